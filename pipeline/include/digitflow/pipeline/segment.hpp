// Finding digit strings on a cleaned page, and reading them once the CNN has scored the
// pieces. Connected components of the ink are merged when they are broken strokes of one
// digit, chained into strings by geometry, and every component too wide for one digit
// gets candidate cuts; each hypothesis (uncut, cut here, cut there, cut in three) becomes
// digit images for the CNN, and `read_strings` keeps the hypothesis whose digits the model
// is most sure of. With an 11-class model (class 10 = "not a digit"), pieces that are not
// digits (printed letters, symbols, form debris) are dropped and break strings.
#pragma once

#include <vector>

#include <opencv2/core.hpp>

#include "digitflow/pipeline/clean.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/results.hpp"

namespace digitflow::pipeline {

struct SegmentOptions {
  int min_digit_height = 30;    // px; smaller ink is dots, noise and small print
  int max_digit_height = 400;   // px; taller ink is not a digit of a form
  double string_gap = 1.0;      // largest gap inside a string, in heights of its tallest digit
  double split_aspect = 0.6;    // a component wider than this x its height may be 2 digits
  int max_cuts = 3;             // candidate cut positions tried per split
  // Digits side by side stand on one line: each piece of a cut must span at least this share
  // of its blob's height, or the cut is no reading. A slanted stroke cut in two leaves an
  // upper and a lower half, each as slim as a 1. A lower piece at either end of a blob with
  // others on its line is a stroke's tail instead: the cuts are tried without the one that
  // made it.
  double cut_height = 0.6;
};

// One way of reading one component: as one digit, or cut into two or three.
struct Hypothesis {
  std::vector<int> pieces;  // indices into Segmentation::pieces, left to right
  // The blob read whole with the ink of the form line under it given back where a pen's
  // stroke lay along that line: a 2's base, which goes with the line and leaves a 7.
  // read_strings takes it only where it turns a 7 into a surer 2.
  bool on_line = false;
};

// One blob of ink in a string (after merging broken strokes), with its ways of reading.
// A blob below the digit height (lower-case print beside a capital, a short mark) is kept
// as context with no hypotheses: it is never read, and it counts against the string being
// handwritten digits.
struct Slot {
  Box box;                             // deskewed page coordinates
  std::vector<Hypothesis> hypotheses;  // [0] is the uncut reading; empty for small context
  // A blob wide enough to be two digits or more keeps its ink and the grey page under it
  // until normalize_cuts knows whether its cuts are worth scoring.
  cv::Mat mask;       // its ink, box-sized
  cv::Mat grey;       // the flattened page under the box, 2 px wider on each side
  cv::Point grey_at;  // top-left of `grey` in deskewed page coordinates
  // Two strokes of digit height side by side, nearly touching, joined as one digit written
  // in two (a 0 as "(" and ")"): its cut at the join reads them apart again.
  bool joined = false;
  // A piece holding this slot's ink and the next slot's together, where the two could be one
  // digit written in two strokes a little apart; read_strings weighs it against the two
  // (ReadOptions::join_doubt). -1 when there is none.
  int join_next = -1;
};

struct StringCandidate {
  Box box;
  std::vector<Slot> slots;  // left to right
};

struct Piece {
  Box box;              // deskewed page coordinates of its ink
  cv::Mat mask;         // its ink, box-sized (released once normalised)
  DigitPixels pixels{};
  bool usable = false;  // normalised; false when it held no ink (or was never needed)
  // A reading with a form line's ink (Hypothesis::on_line) waits for the first pass: the
  // flattened page under it is kept until normalize_cuts knows whether the blob reads 7.
  cv::Mat grey;
  cv::Point grey_at;
};

struct Segmentation {
  std::vector<StringCandidate> strings;
  std::vector<Piece> pieces;
  SegmentOptions options;  // those it was found with (the cuts are made with them)
  double paper = 255;      // grey level of the paper on the flattened page
};

// Components -> strings -> hypotheses, with each piece's mask.
Segmentation find_strings(const CleanedPage& page, const SegmentOptions& options = {});

// Reading is two passes over the CNN, so that cuts are only made and scored where they can
// matter:
// 1. normalize_pieces turns each slot's uncut piece (and the piece of two strokes that may be
//    one digit, Slot::join_next) into a 28x28 MNIST-style image (from the flattened grey
//    levels), keeps the grey page under the slots that may be cut and under each reading
//    with a form line's ink (Hypothesis::on_line), and returns the pieces to score first.
// 2. With those scores in `probs` (row i = piece i, `classes` wide), normalize_cuts cuts the
//    slots that need it (the uncut reading is unsure, not a digit, or too wide for one; not
//    in a line of print), normalises the readings with a line's ink of the slots read whole
//    as 7 (the only ones read_strings may take), grows `probs` to match (new rows zero) and
//    returns the new pieces to score. Every kept ink and grey is released; a reading with a
//    line's ink that was not needed stays unusable.
std::vector<int> normalize_pieces(const CleanedPage& page, Segmentation& segmentation);
std::vector<int> normalize_cuts(Segmentation& segmentation, std::vector<float>& probs, int classes);

struct ReadOptions {
  double split_penalty = 0.5;   // log-probability cost of each extra digit from a cut
  double wide_penalty = 1.5;    // log-probability cost per unit of a piece's width/height over 1
  double temperature = 1.0;     // probabilities are sharpened as p^(1/T), renormalised
  int min_digits = 2;           // shorter strings are dropped: a lone mark looks like a '1'
  // A piece of a string's digit height that the model takes for "not a digit" with less
  // than this probability is read as its likeliest digit (with that digit's low confidence)
  // instead of cutting the string in two: inside a line of handwritten digits, an odd digit
  // or two glued ones are far likelier than a printed letter. With two digits or more on
  // each side, such a piece is kept whatever its probability: the string it would cut comes
  // out whole, with that piece's low confidence, instead of as two strings each sure of
  // itself and neither right. A rejected piece shorter than 0.75 of the digits' height
  // there (a stroke broken off a neighbour, debris) is passed over instead, the string
  // carrying its "not a digit" probability.
  double keep_unsure_below = 0.99;
  // A blob cut into n digits is about n digits wide: a cut reading of one narrower than
  // `narrow_cut` x n x the width of the string's digits (the median of its slots read whole
  // as one, where there are three or more) loses `narrow_cut_penalty` of log-probability. A
  // wide 0 or 6 can read surer in halves ("27", "18") than whole.
  double narrow_cut = 0.6;
  double narrow_cut_penalty = 2.0;
  // A string that a rejected piece ends carries that piece's "not a digit" as the model
  // gives it, unsharpened: a glued pair of digits or the remains of a broken one is often
  // rejected at 0.9 and more, and the string it cut short is wrong. A piece before the
  // digits rejected with at least `symbol_not_digit` that has the build of a printed sign
  // carries it sharpened by the temperature, as digits are: 0.6 to 1.3 of the digits'
  // height tall and 0.3 to 0.8 of it wide (a "$" before an amount; two glued digits are
  // wider, the remains of a broken one lower, a lone 1 narrower). A whole digit the model
  // rejects has that build too; after the digits, where no such sign was seen, a piece
  // keeps the model's own doubt. Above 1, this is off.
  double symbol_not_digit = 0.9;
  // A string of three digits or more holding one under `short_digit` of its digits' median
  // height: that piece is as likely a fragment (a 1's foot, the end of a stroke cut off by a
  // line) as a digit of the string, which takes half its confidence for it. 0 turns it off.
  double short_digit = 0.5;
  // A string of three digits or more with a gap wider than the median of its other gaps by
  // more than `lost_digit_gap` of its digits' median height has room for a digit it may have
  // lost there (a 1 broken into specks, or faded): it takes half its confidence for it.
  // Overlapping digits count as a gap of 0. 0 turns it off.
  double lost_digit_gap = 0.6;
  // Two neighbouring slots that may be one digit in two strokes (Slot::join_next) are read
  // as that one digit when either is read as no digit or as one with less than `join_doubt`,
  // and the joined piece, less split_penalty, scores more than the two. A stroke and a
  // shorter loop after it, its top lower and their bottoms level (a 6's stem and loop), are
  // weighed even when both are sure, and at no split_penalty. 0 turns it off.
  double join_doubt = 0.9;
};

// Reads the strings given the model's probabilities for every piece (row i of `probs` is
// piece i; `classes` is 10, or 11 with "not a digit" last). Boxes are mapped through
// `to_page` into the coordinates of the page as stored and clipped to width x height.
std::vector<StringResult> read_strings(const Segmentation& segmentation, const float* probs, int classes,
                                       const cv::Mat& to_page, int width, int height,
                                       const ReadOptions& options = {});

// The box of `box` after the affine map (2x3 CV_64F), clipped to the page.
Box map_box(const Box& box, const cv::Mat& affine, int width, int height);

}  // namespace digitflow::pipeline
