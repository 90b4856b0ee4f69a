// The sm_90a kernels' shared-memory operand tiles (CuTe layouts), in a header of their own so that a host test
// (tests/kernels/common/sm90_tiles_test.cpp) checks the same types the kernels use.
#pragma once

#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>

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

}  // namespace deltabench::cuda::sm90::detail
