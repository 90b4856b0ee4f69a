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

}  // namespace

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
