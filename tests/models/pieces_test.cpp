// Tests models/pieces.h: the counts, their summary, and what a language model's forward counts on the
// CPU, where the short convolution and the L2 norm take the fused CPU passes and the rest is ATen's.
// tests/models/fused_cuda_test.cpp has the kernels' side on a GPU, tests/train/trainer_test.cpp a run's record.

#include "models/language_model.h"
#include "models/pieces.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

using namespace deltabench::models;

TEST_CASE("pieces: the summary names each piece called with its forms, in a fixed order", "[models]") {
  PieceCounts c;
  CHECK(pieces_summary(c) == "none");
  c.calls[static_cast<size_t>(Piece::kShortConv)][static_cast<size_t>(PieceForm::kKernel)] = 6;
  c.calls[static_cast<size_t>(Piece::kEmbedding)][static_cast<size_t>(PieceForm::kAten)] = 1;
  CHECK(pieces_summary(c) == "embedding aten, short conv kernel");
  c.calls[static_cast<size_t>(Piece::kShortConv)][static_cast<size_t>(PieceForm::kAten)] = 2;
  CHECK(pieces_summary(c) == "embedding aten, short conv kernel + aten");
  PieceCounts d = c;
  d += c;
  CHECK(d.of(Piece::kShortConv, PieceForm::kKernel) == 12);
  CHECK(pieces_summary(d - c) == pieces_summary(c));
  CHECK(pieces_summary(c - c) == "none");
}

TEST_CASE("pieces: a model's forward on the CPU counts every piece it calls, in the form that ran", "[models]") {
  ModelConfig config;
  config.vocab_size = 23;
  config.d_model = 16;
  config.num_layers = 2;
  config.mixer = default_mixer(MixerKind::kGatedDeltaNet);
  LanguageModel model(config);
  const auto ids = at::randint(0, 23, {2, 7}, at::kLong);

  const auto before = piece_counts();
  (void)model->forward(ids);
  const auto ran = piece_counts() - before;
  // One lookup; a LayerNorm before each block's mixer and the final one; each layer's gated output
  // norm; three short convolutions and two L2 norms (q, k) a layer.
  CHECK(ran.of(Piece::kEmbedding, PieceForm::kAten) == 1);
  CHECK(ran.of(Piece::kLayerNorm, PieceForm::kAten) == 3);
  CHECK(ran.of(Piece::kRmsNorm, PieceForm::kAten) == 2);
  CHECK(ran.of(Piece::kShortConv, PieceForm::kCpuFused) == 6);
  CHECK(ran.of(Piece::kQkL2Norm, PieceForm::kCpuFused) == 4);
  CHECK(pieces_summary(ran) ==
        "embedding aten, LayerNorm aten, RMSNorm aten, short conv cpu fused, q/k L2 norm cpu fused");

  // Attention's model has only the embedding and the LayerNorms around its SDPA.
  config.mixer = default_mixer(MixerKind::kAttention);
  LanguageModel attention(config);
  const auto before_attention = piece_counts();
  (void)attention->forward(ids);
  CHECK(pieces_summary(piece_counts() - before_attention) == "embedding aten, LayerNorm aten");
}
