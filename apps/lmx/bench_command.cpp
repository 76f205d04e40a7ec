// lmx bench kernels: the kernel report (matmul family against this machine's measured
// bandwidth and FMA peak).
#include <CLI/CLI.hpp>
#include <iostream>

#ifdef LMX_HAVE_KERNEL_REPORT
#include "bench/kernel_report.h"
#endif
#include "cli_common.h"
#include "commands.h"
#include "lmx/core/error.h"

namespace lmx::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* kernels = bench->add_subcommand("kernels", "Kernel report: GB/s and GFLOP/s next to the measured roofline");
#ifdef LMX_HAVE_KERNEL_REPORT
  auto opts = std::make_shared<bench::KernelReportOptions>();
  kernels->add_option("--threads", opts->threads, "Threads (default 2)");
  kernels->add_option("--repeats", opts->repeats, "Timed samples per kernel (median reported)");
  kernels->add_flag("--quick", opts->quick, "Fewer shapes");
  kernels->add_option("--filter", opts->filter, "Only kernels whose name contains this");
  kernels->callback([opts] {
    int rc = bench::run_kernel_report(std::cout, *opts);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
#else
  kernels->callback([] { throw Unsupported("this lmx was built without benchmarks (-DLMX_BUILD_BENCH=OFF)"); });
#endif
}

}  // namespace lmx::cli
