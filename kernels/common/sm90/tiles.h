// The sm_90a kernels' shared-memory operand tiles (CuTe layouts), their warpgroup products and where a thread's
// accumulator values lie, in a header of their own so that a host test (tests/kernels/common/sm90/tiles_test.cpp)
// checks the same types the kernels use.
#pragma once

#include <cute/atom/mma_atom.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>

namespace deltabench::cuda::sm90::detail {

// A Rows x Cols tile of 16-bit elements, each row's Cols contiguous in 128-byte swizzled atoms (8 rows x 64
// columns): a K-major wgmma operand whose reduction index is Cols.
template <class E, int Rows, int Cols>
using KMajorTile = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW128_Atom<E>{},
                                                cute::Shape<cute::Int<Rows>, cute::Int<Cols>>{}));

// The same bytes read as the transposed Cols x Rows tile, an MN-major operand (B of a product that reduces over
// Rows): its atoms (64 along Cols x 8 along Rows) taken Rows first, as KMajorTile lays them out. In CuTe's
// default order (Cols first) the bytes differ wherever Cols spans more than one atom (Cols 128).
template <class E, int Rows, int Cols>
using TransposedView = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW128_Atom<E>{},
                                                    cute::Shape<cute::Int<Cols>, cute::Int<Rows>>{},
                                                    cute::Step<cute::_2, cute::_1>{}));

// The 64 x 64 x 16 warpgroup product of element type E with fp32 accumulation, A and B majorness given.
template <class E, cute::GMMA::Major A, cute::GMMA::Major B>
struct MmaOp;
template <cute::GMMA::Major A, cute::GMMA::Major B>
struct MmaOp<cutlass::bfloat16_t, A, B> {
  using type = cute::SM90_64x64x16_F32BF16BF16_SS<A, B>;
};
template <cute::GMMA::Major A, cute::GMMA::Major B>
struct MmaOp<cutlass::half_t, A, B> {
  using type = cute::SM90_64x64x16_F32F16F16_SS<A, B>;
};

// The warpgroup's tiled products on operands of E (the kernels' Inner), named by the majorness of A and B: K
// (contiguous along the sum) or MN. A tile read in the other order is the same bytes with the other major.
template <class E>
using MmaKKOf = decltype(cute::make_tiled_mma(typename MmaOp<E, cute::GMMA::Major::K, cute::GMMA::Major::K>::type{}));
template <class E>
using MmaKNOf = decltype(cute::make_tiled_mma(typename MmaOp<E, cute::GMMA::Major::K, cute::GMMA::Major::MN>::type{}));
template <class E>
using MmaNNOf = decltype(cute::make_tiled_mma(typename MmaOp<E, cute::GMMA::Major::MN, cute::GMMA::Major::MN>::type{}));

// Where value i of a thread's [M x N] accumulator of those products lies (CuTe's partition_C of the tiled product,
// 64 x 64 atoms taken along M first; the host test checks the two against each other): row acc_row(tid) +
// acc_row_of<M>(i), column acc_col(tid) + acc_col_of<M>(i). Within an atom a thread holds two rows, r and r + 8
// (acc_upper(i) says which); a value's row and column past the thread's first are constants of i, so unrolled
// loops over i address with immediate offsets from a few row pointers, where CuTe's coordinates of an opaque thread
// index make the compiler compute each address from scratch.
CUTE_HOST_DEVICE constexpr int acc_row(int tid) { return 16 * (tid / 32) + (tid % 32) / 4; }
CUTE_HOST_DEVICE constexpr int acc_col(int tid) { return 2 * (tid % 4); }
CUTE_HOST_DEVICE constexpr int acc_upper(int i) { return (i / 2) % 2; }
template <int M = 64>
CUTE_HOST_DEVICE constexpr int acc_row_of(int i) { return 8 * acc_upper(i) + 64 * ((i / 32) % (M / 64)); }
template <int M = 64>
CUTE_HOST_DEVICE constexpr int acc_col_of(int i) { return i % 2 + 8 * ((i / 4) % 8) + 64 * ((i / 32) / (M / 64)); }

// Element (r, c)'s offset in a Rows x Cols KMajorTile, and element (m, k)'s in an M x K tile of MN-major atoms in
// CuTe's default order (tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<M, K>)), closed forms of the two
// layouts (the host test checks them against CuTe's): a row of an atom is 64 elements, 128 bytes, in 16-byte
// chunks swizzled by the row's index within its 8-row atom. For a thread's accumulator values the row's index
// within its atom is the thread's (acc_row(tid) % 8), and the chunk a constant of the value's index.
template <int Rows>
CUTE_HOST_DEVICE constexpr int k_major_at(int r, int c) {
  return (c / 64) * Rows * 64 + (r / 8) * 512 + (r % 8) * 64 + ((((c % 64) / 8) ^ (r % 8)) * 8) + c % 8;
}
template <int M>
CUTE_HOST_DEVICE constexpr int mn_major_at(int m, int k) {
  return (k / 8) * M * 8 + (m / 64) * 512 + (k % 8) * 64 + ((((m % 64) / 8) ^ (k % 8)) * 8) + m % 8;
}

}  // namespace deltabench::cuda::sm90::detail
