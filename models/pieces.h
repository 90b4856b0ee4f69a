#pragma once
// Which form served the pieces around the sequence ops: the embedding's gradient, the blocks' and the
// output's norms, the short convolutions and the L2 normalisation of q and k. Each runs on deltabench's
// CUDA kernels (models/fused_cuda.h), on the CPU's fused passes (models/fused_cpu.h) or in its ATen form,
// as the backend and the tensors decide at each call. Every call is counted, as the sequence ops' are
// (kernels/common/backend.h), so that a run's record says what its step ran, not what was asked for.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace deltabench::models {

enum class Piece { kEmbedding, kLayerNorm, kRmsNorm, kShortConv, kQkL2Norm };
inline constexpr int kPieceCount = 5;

enum class PieceForm { kKernel, kCpuFused, kAten };
inline constexpr int kPieceFormCount = 3;

// "embedding", "LayerNorm", "RMSNorm", "short conv", "q/k L2 norm".
std::string_view piece_name(Piece piece);
// "kernel", "cpu fused", "aten".
std::string_view piece_form_name(PieceForm form);

struct PieceCounts {
  std::array<std::array<int64_t, kPieceFormCount>, kPieceCount> calls{};  // [piece][form]
  int64_t of(Piece piece, PieceForm form) const {
    return calls[static_cast<size_t>(piece)][static_cast<size_t>(form)];
  }
};

// Counts since the process started (atomic; any thread).
PieceCounts piece_counts();
PieceCounts operator-(const PieceCounts& a, const PieceCounts& b);
PieceCounts& operator+=(PieceCounts& a, const PieceCounts& b);

// The pieces a phase called, in Piece's order, each with its form(s): "embedding kernel, LayerNorm
// kernel, short conv kernel + aten". "none" where it called none.
std::string pieces_summary(const PieceCounts& phase);

void count_piece_call(Piece piece, PieceForm form);

}  // namespace deltabench::models
