// Tests kernels/common/sm90/tiles.h on the host: a K-major operand tile read through its transposed view is the
// same bytes, so a kernel can keep one copy of K, dW or dU and read it both ways (chunk_ut_bwd.cu), and each of
// its 64-column blocks is a 64-column transposed tile of its own (chunk_ut_fwd.cu's B tiles of K).

#include "tests/support/catch.h"

#include "kernels/common/sm90/tiles.h"

#include <cute/tensor.hpp>

namespace {

using cute::Int;
using cute::Shape;

// Of the Rows x Cols elements of KMajorTile, how many the view does not put at the same offset.
template <class Tile, class View>
int differing(int rows, int cols) {
  const Tile tile{};
  const View view{};
  int bad = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) bad += tile(r, c) != view(c, r);
  }
  return bad;
}

template <int Rows, int Cols>
int view_differs() {
  using E = cutlass::half_t;
  using namespace deltabench::cuda::sm90::detail;
  return differing<KMajorTile<E, Rows, Cols>, TransposedView<E, Rows, Cols>>(Rows, Cols);
}

template <int Rows, int Cols>
int default_order_differs() {
  using E = cutlass::half_t;
  using Default = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<Cols>, Int<Rows>>{}));
  return differing<deltabench::cuda::sm90::detail::KMajorTile<E, Rows, Cols>, Default>(Rows, Cols);
}

// Of the Rows x Cols elements of KMajorTile, how many are not where the 64-column transposed tile of their block
// (64 x Rows elements each, one after another) puts them.
template <int Rows, int Cols>
int blocks_differ() {
  using E = cutlass::half_t;
  using namespace deltabench::cuda::sm90::detail;
  const KMajorTile<E, Rows, Cols> tile{};
  const TransposedView<E, Rows, 64> block{};
  int bad = 0;
  for (int r = 0; r < Rows; ++r) {
    for (int c = 0; c < Cols; ++c) bad += tile(r, c) != (c / 64) * 64 * Rows + block(c % 64, r);
  }
  return bad;
}

// Of an [M x N] accumulator's values, over the warpgroup's 128 threads, how many are not where acc_row, acc_row_of,
// acc_col and acc_col_of say CuTe's partition_C puts them (and, at M 64, where acc_upper says which row half).
template <class Mma, int M, int N>
int misplaced_accumulator_values() {
  using namespace deltabench::cuda::sm90::detail;
  Mma mma;
  int bad = 0;
  for (int tid = 0; tid < 128; ++tid) {
    const auto coord = mma.get_thread_slice(tid).partition_C(cute::make_identity_tensor(Shape<Int<M>, Int<N>>{}));
    for (int i = 0; i < int(cute::size(coord)); ++i) {
      bad += cute::get<0>(coord(i)) != acc_row(tid) + acc_row_of<M>(i) || cute::get<1>(coord(i)) != acc_col(tid) + acc_col_of<M>(i);
      if (M == 64) bad += cute::get<0>(coord(i)) != acc_row(tid) + 8 * acc_upper(i);
    }
  }
  return bad;
}

template <class Mma>
int misplaced_shapes() {
  return misplaced_accumulator_values<Mma, 64, 64>() + misplaced_accumulator_values<Mma, 64, 128>() +
         misplaced_accumulator_values<Mma, 128, 64>() + misplaced_accumulator_values<Mma, 128, 128>();
}

template <class E>
int misplaced_for() {
  using namespace deltabench::cuda::sm90::detail;
  return misplaced_shapes<MmaKKOf<E>>() + misplaced_shapes<MmaKNOf<E>>() + misplaced_shapes<MmaNNOf<E>>();
}

// Of a tile's elements, how many k_major_at (Rows x Cols, K-major) or mn_major_at (M x K, MN-major) puts elsewhere
// than CuTe does. The tiles are made on a 1024-byte aligned buffer, as the kernels make them on shared memory: the
// swizzle acts on the address's bits, and a layout evaluated alone applies it to element offsets instead.
alignas(1024) cutlass::half_t tile_buffer[128 * 128];

template <int Rows, int Cols>
int k_major_misplaced() {
  using namespace deltabench::cuda::sm90::detail;
  const auto tile = cute::make_tensor(cute::make_smem_ptr(tile_buffer), KMajorTile<cutlass::half_t, Rows, Cols>{});
  int bad = 0;
  for (int r = 0; r < Rows; ++r) {
    for (int c = 0; c < Cols; ++c) bad += &tile(r, c) - tile_buffer != k_major_at<Rows>(r, c);
  }
  return bad;
}
template <int M, int K>
int mn_major_misplaced() {
  using namespace deltabench::cuda::sm90::detail;
  const auto tile = cute::make_tensor(cute::make_smem_ptr(tile_buffer),
                                      cute::tile_to_shape(cute::GMMA::Layout_MN_SW128_Atom<cutlass::half_t>{}, Shape<Int<M>, Int<K>>{}));
  int bad = 0;
  for (int m = 0; m < M; ++m) {
    for (int k = 0; k < K; ++k) bad += &tile(m, k) - tile_buffer != mn_major_at<M>(m, k);
  }
  return bad;
}

}  // namespace

TEST_CASE("sm90 tiles: k_major_at and mn_major_at are CuTe's layouts", "[kernels][sm90]") {
  CHECK(k_major_misplaced<64, 64>() == 0);
  CHECK(k_major_misplaced<64, 128>() == 0);
  CHECK(mn_major_misplaced<64, 64>() == 0);
  CHECK(mn_major_misplaced<128, 64>() == 0);
}

TEST_CASE("sm90 tiles: the accumulator values lie where acc_row and acc_col say", "[kernels][sm90]") {
  CHECK(misplaced_for<cutlass::half_t>() == 0);
  CHECK(misplaced_for<cutlass::bfloat16_t>() == 0);
  // A value's row half and column past the thread's first are constants of its index: the upper row every
  // other pair, 8 columns every 4 values, the second 64-column atom from value 32.
  using namespace deltabench::cuda::sm90::detail;
  CHECK(acc_upper(2) == 1);
  CHECK(acc_col_of(5) == 9);
  CHECK(acc_col_of(33) == 65);
  CHECK(acc_row_of<128>(33) == 64);
  CHECK(acc_col_of<128>(33) == 1);
}

TEST_CASE("sm90 tiles: a K-major tile read through its transposed view is the same bytes", "[kernels][sm90]") {
  CHECK(view_differs<64, 64>() == 0);
  CHECK(view_differs<64, 128>() == 0);
  CHECK(view_differs<64, 256>() == 0);
  CHECK(cute::cosize(deltabench::cuda::sm90::detail::TransposedView<cutlass::half_t, 64, 128>{}) == 64 * 128);
  // CuTe's default atom order agrees while a row is one atom wide and not beyond: why the view orders its own.
  CHECK(default_order_differs<64, 64>() == 0);
  CHECK(default_order_differs<64, 128>() == 7168);
}

TEST_CASE("sm90 tiles: each 64 columns of a K-major tile are a transposed tile of their own", "[kernels][sm90]") {
  CHECK(blocks_differ<64, 64>() == 0);
  CHECK(blocks_differ<64, 128>() == 0);
  CHECK(blocks_differ<64, 256>() == 0);
  CHECK(cute::cosize(deltabench::cuda::sm90::detail::TransposedView<cutlass::half_t, 64, 64>{}) == 64 * 64);
}
