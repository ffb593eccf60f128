// Generated "not a digit" images (class 10): what the page pipeline meets besides handwritten
// digits — printed letters and symbols, form-line debris, dots, scribbles — and the wrong cuts
// it tries on touching digits (two digits glued, a slice of one). Each is drawn dark on light
// paper at page scale and passed through normalize_digit(), exactly as a page's digit would,
// so that the model learns shapes, not the traces of a different rendering.
#pragma once

#include <cstdint>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/normalize.hpp"

namespace digitflow::pipeline {

// The label of a generated negative, and the class count of a model that has it.
inline constexpr uint8_t kNotDigitClass = 10;
inline constexpr int kClassesWithNotDigit = 11;

// The held-out negatives that `digitflow train` and `digitflow eval` report the rejection
// rate on: a fixed seed, far from any training seed one would choose.
inline constexpr uint64_t kHeldOutNegativesSeed = 0x4e454748454c44ull;
inline constexpr int64_t kHeldOutNegatives = 2000;

enum class NegativeKind {
  letter,       // one printed letter that no handwritten digit resembles (no O, I, S, Z, ...)
  cluster,      // 2-3 printed letters touching, one blob ("AM", "ord", "Pa")
  symbol,       // $ : - # * ( ) & % @ , . and a dash
  symbol_slice, // the left or right part of a printed $, as a cut through one leaves it
  line,         // form-line debris: near-horizontal strokes, corners, dotted and dashed rules
  dot,          // dots, small blobs, specks
  scribble,     // signature-like curves, loops, zigzag scratches
  glued_pair,   // two digits side by side, touching or overlapping (needs digits)
  digit_slice,  // the left or right 35-60% of a digit, only where that part is no digit itself
                // (never a 1, a 2 or a 7, not the right of a 3, ...; needs digits)
};

// One negative of `kind`, a pure function of (kind, seed, digits). `digits` (labels 0-9;
// other labels are skipped) is needed by glued_pair and digit_slice; std::invalid_argument
// when it is missing or holds no digit.
DigitPixels make_negative(NegativeKind kind, uint64_t seed, const kernels::LabelledImages* digits);

// `count` negatives, 28x28, label kNotDigitClass, kinds mixed (glued pairs and slices only
// when `digits` is given: pass the MNIST training images when training, so that no test
// digit leaks in). Deterministic per (seed, digits). Printed glyphs come from the DejaVu
// fonts in /usr/share/fonts/truetype/dejavu (Debian fonts-dejavu-core) and OpenCV's Hershey
// fonts; without DejaVu only Hershey is used, and the images differ.
kernels::LabelledImages make_negatives(int64_t count, uint64_t seed,
                                       const kernels::LabelledImages* digits = nullptr);

// `digits` redrawn the way the page pipeline sees a digit: scaled to page size, dark ink on
// light paper, then normalize_digit(); each image with probability `share` (chosen per seed
// and image), the others kept as they are. Labels kept. Negatives are all drawn this way, so
// a model trained on MNIST's own rendering alone learns the rendering as a sign of "not a
// digit" and rejects digits cut from pages: training redraws part of its digits, and the
// share of fully redrawn test digits rejected is reported beside MNIST's.
kernels::LabelledImages digits_through_page(const kernels::LabelledImages& digits, uint64_t seed,
                                            double share = 1.0);

// `digits` followed by `negatives`, then deterministically shuffled (per seed), so that
// negatives are spread evenly through the set. Both must have the same image size. With
// `from_digits`, also says for each image of the result whether it is one of `digits`.
kernels::LabelledImages with_negatives(const kernels::LabelledImages& digits,
                                       const kernels::LabelledImages& negatives, uint64_t seed,
                                       std::vector<bool>* from_digits = nullptr);

// The share of an evaluation's images predicted as kNotDigitClass (0 when the model has no
// such class): for held-out negatives, the rejection rate; for digits, the wrong rejections.
double rejected_share(const kernels::EvalResult& result);

}  // namespace digitflow::pipeline
