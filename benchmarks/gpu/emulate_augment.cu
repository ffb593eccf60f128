// The batch builder's warp (warped_pixel and affine_params of kernels/src/cuda/training.cu,
// the functions the kernel calls) run on the CPU against random_affine, the CPU trainer's
// warp, for many seeds: it checks the GPU copy of the transform where no GPU is, not CUDA's
// own math library (test_cuda_ops.cpp does that on a device). Not built by CMake; with
// build/ built (the library already holds training.cu, hence the multiple definitions):
//   nvcc -std=c++20 -O2 -arch=sm_90 -Ikernels/include -Ikernels/src -Ikernels/src/cuda \
//     -DDIGITFLOW_HAVE_CUDNN=0 -DDIGITFLOW_HAVE_CUDA=1 --expt-relaxed-constexpr \
//     benchmarks/gpu/emulate_augment.cu build/kernels/libdigitflow_kernels.a \
//     -Xlinker --allow-multiple-definition -ltbb -ldnnl -lgomp -L/usr/local/cuda/lib -lcudnn \
//     -o /tmp/emulate_augment
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "digitflow/kernels/trainer.hpp"
#include "training.cu"  // the functions, from -Ikernels/src/cuda

using namespace digitflow::kernels;
using namespace digitflow::kernels::cuda;

int main() {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> image(28 * 28), cpu(28 * 28);
  for (auto& p : image) p = static_cast<uint8_t>(rng() % 4 == 0 ? rng() % 256 : 0);
  AugmentConfig augment;
  long long off = 0, worse = 0, total = 0;
  for (uint64_t i = 0; i < 2000; ++i) {
    const uint64_t seed = mix_seed(mix_seed(1, 3), i);
    random_affine(image.data(), 28, 28, augment, seed, cpu.data());
    const AffineParams params = affine_params(augment, seed, 28, 28);
    for (int at = 0; at < 28 * 28; ++at, ++total) {
      const int diff = std::abs(int{warped_pixel(image.data(), 28, 28, params, at)} - cpu[at]);
      off += diff != 0;
      worse += diff > 1;
    }
  }
  std::printf("augment: %lld of %lld pixels differ, %lld by more than one grey level\n", off, total,
              worse);
  return off == 0 ? 0 : 1;
}
