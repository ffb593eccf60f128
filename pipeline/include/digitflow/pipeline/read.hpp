// Reading one image held in memory (the web pad, an uploaded photo of a number): the stages
// run_pages chains for each page of a folder (clean, find strings, normalise, the two CNN
// passes, assemble), called in sequence on one image instead of through the flow graph.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <span>

#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/run.hpp"

namespace digitflow::pipeline {

// Decodes an encoded image (PNG, JPEG, BMP, TIFF: its first page) to 8-bit grey. The size in
// the header is checked against limits.max_pixels before any pixel is decoded. With `dpi`,
// sets it to the resolution the image states (read_header), else limits.assume_dpi. Throws
// ImageError saying what is wrong.
cv::Mat decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits, double* dpi = nullptr);

// The strings on `gray` (8-bit grey, as decode_image gives), read as run_pages reads a page
// with the same options (clean, segment, read, page_template, screen, partner; folders, overlays,
// the backend and int8 are not used: the CPU reads in fp32; for int8, pass an Inference after
// its set_int8, below). `page` is left empty; a page that cannot be read
// (nearly black) has its error set. `dpi` is the image's resolution when known, as clean_page
// takes it: boxes are in the pixels of `gray` either way.
// Throws std::invalid_argument when the model is not a 1x28x28 digit model.
PageResult recognize_image(const cv::Mat& gray, kernels::Network& model, const RunOptions& options, double dpi = 0);
// The same through `inference` as its caller set it up (its screen, partner and int8; those
// of `options` are not used), for a caller that reads image after image: one Inference, and
// its int8 primitives, serve them all. Throws as above for its network.
PageResult recognize_image(const cv::Mat& gray, kernels::Inference& inference, const RunOptions& options,
                           double dpi = 0);

// Ink drawn on a blank canvas (a writing pad: dark ink on light paper, no form lines) read
// as recognize_image reads it through `inference`, however tall the writing: a drawing
// whose tallest piece of ink stands over three quarters of options.segment's
// max_digit_height (a pad on a phone is taller than the digits of a scanned form) is read
// as a scan of the resolution that brings it to that height (clean_page resamples it);
// boxes, fields included, are in `gray`'s pixels. Light ink on a dark canvas (a pad in a
// dark colour scheme) is read as dark ink on light: the ground is what most of the border is.
PageResult recognize_drawing(const cv::Mat& gray, kernels::Inference& inference, const RunOptions& options);

// The image as one digit: normalised like MNIST, scored by the model (averaged with
// `partner`'s reading where one is given, as run_pages reads with RunOptions::partner). The
// box is the whole image; `top` holds the three best classes 0..9. Throws ImageError when it
// holds no ink, std::invalid_argument when a model does not read digits or the two differ.
DigitResult recognize_digit(const cv::Mat& image, kernels::Network& model, kernels::Network* partner = nullptr);
// The same through `inference` as its caller set it up (see recognize_image).
DigitResult recognize_digit(const cv::Mat& image, kernels::Inference& inference);

}  // namespace digitflow::pipeline
