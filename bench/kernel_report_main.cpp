// Stand-alone runner of the kernel report (the CLI exposes it as `lmx bench kernels`).
// Usage: kernel_report [--threads N] [--repeats N] [--quick] [--no-tiers] [--filter TEXT]
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "bench/kernel_report.h"

int main(int argc, char** argv) {
  lmx::bench::KernelReportOptions o;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      o.threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc)
      o.repeats = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick"))
      o.quick = true;
    else if (!std::strcmp(argv[i], "--no-tiers"))
      o.tier_columns = false;
    else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc)
      o.filter = argv[++i];
    else {
      std::cerr << "usage: kernel_report [--threads N] [--repeats N] [--quick] [--no-tiers] [--filter TEXT]\n";
      return 2;
    }
  }
  return lmx::bench::run_kernel_report(std::cout, o);
}
