#include "models/pieces.h"

#include <atomic>

namespace deltabench::models {
namespace {

std::array<std::array<std::atomic<int64_t>, kPieceFormCount>, kPieceCount> g_calls{};

}  // namespace

std::string_view piece_name(Piece piece) {
  switch (piece) {
    case Piece::kEmbedding: return "embedding";
    case Piece::kLayerNorm: return "LayerNorm";
    case Piece::kRmsNorm: return "RMSNorm";
    case Piece::kShortConv: return "short conv";
    case Piece::kQkL2Norm: return "q/k L2 norm";
  }
  return "?";
}

std::string_view piece_form_name(PieceForm form) {
  switch (form) {
    case PieceForm::kKernel: return "kernel";
    case PieceForm::kCpuFused: return "cpu fused";
    case PieceForm::kAten: return "aten";
  }
  return "?";
}

PieceCounts piece_counts() {
  PieceCounts out;
  for (size_t p = 0; p < kPieceCount; ++p) {
    for (size_t f = 0; f < kPieceFormCount; ++f) out.calls[p][f] = g_calls[p][f].load(std::memory_order_relaxed);
  }
  return out;
}

PieceCounts operator-(const PieceCounts& a, const PieceCounts& b) {
  PieceCounts out;
  for (size_t p = 0; p < kPieceCount; ++p) {
    for (size_t f = 0; f < kPieceFormCount; ++f) out.calls[p][f] = a.calls[p][f] - b.calls[p][f];
  }
  return out;
}

PieceCounts& operator+=(PieceCounts& a, const PieceCounts& b) {
  for (size_t p = 0; p < kPieceCount; ++p) {
    for (size_t f = 0; f < kPieceFormCount; ++f) a.calls[p][f] += b.calls[p][f];
  }
  return a;
}

std::string pieces_summary(const PieceCounts& phase) {
  std::string out;
  for (int p = 0; p < kPieceCount; ++p) {
    std::string forms;
    for (int f = 0; f < kPieceFormCount; ++f) {
      if (phase.calls[p][f] <= 0) continue;
      if (!forms.empty()) forms += " + ";
      forms += piece_form_name(static_cast<PieceForm>(f));
    }
    if (forms.empty()) continue;
    if (!out.empty()) out += ", ";
    out += std::string(piece_name(static_cast<Piece>(p))) + " " + forms;
  }
  return out.empty() ? "none" : out;
}

void count_piece_call(Piece piece, PieceForm form) {
  g_calls[static_cast<size_t>(piece)][static_cast<size_t>(form)].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace deltabench::models
