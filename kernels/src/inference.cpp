// Inference on the backend that runs: the CPU path or, in CUDA builds, DeviceInference.
#include "digitflow/kernels/inference.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "digitflow/kernels/trainer.hpp"
#if DIGITFLOW_HAVE_CUDA
#include "digitflow/kernels/cuda/network.hpp"
#endif

namespace digitflow::kernels {

#if DIGITFLOW_HAVE_CUDA
struct Inference::Device {
  cuda::DeviceInference inference;
};
#else
struct Inference::Device {};
#endif

Inference::Inference(Network& net, Backend backend, int batch_size)
    : net_(&net), backend_(start_backend(backend)), batch_size_(std::max(batch_size, 1)) {
#if DIGITFLOW_HAVE_CUDA
  if (backend_ != Backend::cpu)
    device_ = std::make_unique<Device>(Device{cuda::DeviceInference(net, backend_, batch_size_)});
#endif
}

Inference::Inference(Inference&&) noexcept = default;
Inference& Inference::operator=(Inference&&) noexcept = default;
Inference::~Inference() = default;

namespace {

// Throws std::invalid_argument unless `other` reads what `net` reads: `role` names it.
void check_same_reading(const Network& net, const Network& other, const std::string& role) {
  const ModelSpec &a = net.spec(), &b = other.spec();
  if (a.input_channels != b.input_channels || a.input_height != b.input_height ||
      a.input_width != b.input_width || a.classes != b.classes)
    throw std::invalid_argument(role + " takes " + other.input_shape(1).str() + " inputs and " +
                                std::to_string(b.classes) + " classes; the model it reads with takes " +
                                net.input_shape(1).str() + " and " + std::to_string(a.classes));
}

}  // namespace

void Inference::set_screen(Network& screen, float confidence) {
  check_same_reading(*net_, screen, "the screening model");
  if (!(confidence > 0.0f && confidence <= 1.0f))
    throw std::invalid_argument("the screening confidence must be in (0, 1], not " + std::to_string(confidence));
  screen_ = std::make_unique<Inference>(screen, backend_, batch_size_);
  screen_->int8_threads_ = int8_threads_;
  screen_confidence_ = confidence;
}

void Inference::set_partner(Network& partner) {
  check_same_reading(*net_, partner, "the partner model");
  partner_ = std::make_unique<Inference>(partner, backend_, batch_size_);
  partner_->int8_threads_ = int8_threads_;
}

bool Inference::set_int8(bool on) {
  if (screen_) screen_->set_int8(on);
  if (partner_) partner_->set_int8(on);
  int8_.reset();
  int8_why_.clear();
  if (!on || backend_ != Backend::cpu) return false;
  int8_why_ = int8_unsupported(*net_);
  if (!int8_why_.empty()) return false;
  // One pass now: where oneDNN cannot build the int8 primitives on this processor, fp32
  // reads instead (and full_probabilities falls back the same way for a pass size that
  // fails later).
  try {
    int8_ = std::make_unique<Int8Network>(*net_);
    const int64_t quarter = std::max(1, batch_size_ / 4);
    int8_->probabilities(std::vector<uint8_t>(static_cast<size_t>(quarter * net_->input_shape(1).numel()), 0), quarter,
                         batch_size_);
  } catch (const std::exception& e) {
    int8_.reset();
    int8_why_ = std::string("oneDNN could not build its int8 primitives here: ") + e.what();
  }
  return int8();
}

void Inference::set_int8_threads(int threads) {
  int8_threads_ = std::max(0, threads);
  if (screen_) screen_->set_int8_threads(threads);
  if (partner_) partner_->set_int8_threads(threads);
}

std::string Inference::int8_fallback() const {
  std::string out;
  auto add = [&out](const char* role, const std::string& why) {
    if (why.empty()) return;
    out += (out.empty() ? "" : "; ") + std::string(role) + why;
  };
  add("the model: ", int8_why_);
  if (partner_) add("the partner model: ", partner_->int8_why_);
  if (screen_) add("the screening model: ", screen_->int8_why_);
  return out;
}

Tensor Inference::probabilities(std::span<const uint8_t> pixels, int64_t count) {
  if (!screen_) {
    Tensor p = read_in_full(pixels, count);
    images_read_ += count;
    images_read_in_full_ += count;
    return p;
  }
  Tensor p = screen_->probabilities(pixels, count);
  const int64_t classes = net_->spec().classes;
  const size_t image = count > 0 ? pixels.size() / static_cast<size_t>(count) : 0;
  std::vector<int64_t> unsure;
  std::vector<uint8_t> again;
  for (int64_t i = 0; i < count; ++i) {
    const float* row = p.data() + i * classes;
    if (*std::max_element(row, row + classes) >= screen_confidence_) continue;
    unsure.push_back(i);
    again.insert(again.end(), pixels.begin() + static_cast<std::ptrdiff_t>(i * image),
                 pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * image));
  }
  images_read_ += count;
  images_read_in_full_ += static_cast<int64_t>(unsure.size());
  if (unsure.empty()) return p;
  const Tensor full = read_in_full(again, static_cast<int64_t>(unsure.size()));
  for (size_t k = 0; k < unsure.size(); ++k)
    std::copy(full.data() + static_cast<int64_t>(k) * classes, full.data() + static_cast<int64_t>(k + 1) * classes,
              p.data() + unsure[k] * classes);
  return p;
}

Tensor Inference::read_in_full(std::span<const uint8_t> pixels, int64_t count) {
  Tensor p = full_probabilities(pixels, count);
  if (!partner_) return p;
  const Tensor q = partner_->full_probabilities(pixels, count);
  for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] = 0.5f * (p.data()[i] + q.data()[i]);
  return p;
}

Tensor Inference::full_probabilities(std::span<const uint8_t> pixels, int64_t count) {
#if DIGITFLOW_HAVE_CUDA
  if (device_) return device_->inference.probabilities(pixels, count);
#endif
  // The CPU's convolution primitives are built and kept per batch shape, with buffers sized
  // for it: a pass is padded with blank images to a multiple of a quarter batch, so that at
  // most four shapes are ever built. (Padded to whole batches, a fifth of the images the
  // default model read in a run on form pages were blanks; with the training primitives,
  // whose buffers are larger, four shapes had raised a run's peak memory from 599 to 819 MiB.)
  auto read = [&](std::span<const uint8_t> images, int64_t n) {
    if (int8_ && static_cast<int64_t>(images.size()) == n * net_->input_shape(1).numel()) {
      try {
        return int8_->probabilities(images, n, batch_size_, int8_threads_);
      } catch (const std::exception& e) {
        int8_.reset();  // oneDNN could not build this pass size: fp32 from now on
        int8_why_ = "oneDNN could not build a pass of " + std::to_string(n) + " images: " + e.what();
      }
    }
    return infer_probabilities(*net_, images, n, batch_size_);
  };
  const int64_t quarter = std::max(1, batch_size_ / 4);
  const int64_t padded = (count + quarter - 1) / quarter * quarter;
  if (padded == count) return read(pixels, count);
  if (pixels.size() % static_cast<size_t>(count) != 0) return read(pixels, count);  // refuses it, naming the sizes
  std::vector<uint8_t> blank_padded(pixels.begin(), pixels.end());
  blank_padded.resize(pixels.size() / static_cast<size_t>(count) * static_cast<size_t>(padded), 0);
  const Tensor all = read(blank_padded, padded);
  const int64_t classes = all.numel() / padded;
  Tensor p({count, classes});
  std::copy(all.data(), all.data() + count * classes, p.data());
  return p;
}

}  // namespace digitflow::kernels
