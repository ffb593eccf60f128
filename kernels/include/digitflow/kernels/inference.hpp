// Class probabilities for batches of raw digits on whichever backend runs: the CPU's
// infer_probabilities, or on a GPU cuda::DeviceInference (weights uploaded once, pinned
// buffers, copies overlapping the compute). The one object a caller such as the page
// pipeline holds to score digits, whatever runtime.backend says.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/network.hpp"

namespace digitflow::kernels {

class Inference {
 public:
  // Resolves `backend` with start_backend (auto may become the CPU; an unavailable GPU
  // backend throws BackendUnavailable). On a GPU the network's weights are copied now:
  // later changes to `net` are not seen. `net` must outlive this object.
  Inference(Network& net, Backend backend = Backend::cpu, int batch_size = 256);
  Inference(Inference&&) noexcept;
  Inference& operator=(Inference&&) noexcept;
  ~Inference();

  Backend backend() const { return backend_; }
  // The full network it reads with (not the screen's, nor the partner's).
  Network& network() const { return *net_; }
  // (count, classes); throws std::invalid_argument when pixels is not count images.
  Tensor probabilities(std::span<const uint8_t> pixels, int64_t count);

  // Reads in two stages: `screen`, a small model with the same input and classes, reads
  // every image first; an image it gives a top probability of at least `confidence` keeps
  // the screen's probabilities, and only the others are read by the full network. Throws
  // std::invalid_argument when the two models' inputs or classes differ, or confidence is
  // not in (0, 1]. `screen` must outlive this object.
  void set_screen(Network& screen, float confidence);
  // A second network of the same input and classes, trained apart (another seed, other
  // pages): every image the full network reads, it reads too, and the two probabilities are
  // averaged. Where the two disagree the reading is in doubt, as it should be. Throws
  // std::invalid_argument when the inputs or classes differ. `partner` must outlive this object.
  void set_partner(Network& partner);
  // On the CPU, reads through Int8Network (int8.hpp) where `on` and the network (and the
  // screen's and the partner's, for them) can; returns whether the full network, and the
  // partner where there is one, now do (false, and fp32, also where oneDNN cannot build its
  // int8 primitives on this processor). Call after set_screen and set_partner.
  // Probabilities differ from fp32's by the rounding of 8-bit activations.
  bool set_int8(bool on);
  // The threads of one int8 pass (oneDNN's), for every model it reads with; 0 (the default)
  // uses kernels::thread_count(). A caller whose own threads keep the cores busy while it
  // reads (the page graph) gives fewer: more would only wait for the cores.
  void set_int8_threads(int threads);
  // Whether the full network, and the partner where there is one, read in int8 now: false
  // after a pass size oneDNN could not build made one of them fall back to fp32.
  bool int8() const { return int8_ != nullptr && (!partner_ || partner_->int8()); }
  // Why a model that set_int8(true) asked to read in int8 reads in fp32 on the CPU:
  // "the model: WHY", then "the partner model: WHY" and "the screening model: WHY", joined
  // by "; ". Empty where all of them read in int8, where int8 was not asked for, and on a
  // GPU (where int8 is not offered).
  std::string int8_fallback() const;
  // Images read so far, and how many of them the full network (and the partner) read.
  int64_t images_read() const { return images_read_; }
  int64_t images_read_in_full() const { return images_read_in_full_; }

 private:
  Tensor full_probabilities(std::span<const uint8_t> pixels, int64_t count);
  // full_probabilities, averaged with the partner's where there is one.
  Tensor read_in_full(std::span<const uint8_t> pixels, int64_t count);

  struct Device;
  Network* net_;
  Backend backend_;
  int batch_size_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Inference> screen_;
  std::unique_ptr<Inference> partner_;
  std::unique_ptr<Int8Network> int8_;
  std::string int8_why_;  // this network's own reason, for int8_fallback
  float screen_confidence_ = 1.0f;
  int int8_threads_ = 0;
  int64_t images_read_ = 0, images_read_in_full_ = 0;
};

}  // namespace digitflow::kernels
