#pragma once
// The benchmarks' own flag, --device=cpu|cuda[:N], taken out of argv before Google Benchmark reads it.

#include <c10/core/Device.h>

#include <cstring>
#include <string>

namespace deltabench::bench {

// Removes --device=... from argv (adjusting argc) and returns it; the CPU when absent.
inline c10::Device take_device_flag(int& argc, char** argv) {
  c10::Device device(c10::kCPU);
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0) {
      device = c10::Device(std::string(argv[i] + 9));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return device;
}

}  // namespace deltabench::bench
