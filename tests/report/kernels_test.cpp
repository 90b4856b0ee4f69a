// The kernel report (report/kernels.cpp): a fixture CSV against a golden Markdown file, the derived
// counters, missing cases and targets, the plot files where gnuplot exists, and the CSV's errors.
// The fixture's times are made up; they only have to be distinct and easy to check.

#include "report/kernels.h"

#include "bench/kernel_cases.h"
#include "tests/support/catch.h"
#include "tests/support/golden.h"
#include "tests/support/temp_dir.h"
#include "tests/support/source_dir.h"

#include <fmt/core.h>

#include <fstream>

using namespace deltabench;
using testing::read_file;

namespace {

const std::string kDir = deltabench::testing::source_dir() + "/tests/fixtures/report/";

// The error message of reading `text` as the CSV, or "" when it reads.
std::string error_of(const std::string& text) {
  testing::TempDir dir("deltabench-kernels-test");
  const auto path = (dir.path() / "bad.csv").string();
  std::ofstream(path) << text;
  try {
    report::read_kernel_timings(path);
  } catch (const report::ReportError& e) {
    return e.what();
  }
  return "";
}

// The header written before the registry had dtypes (every row bf16), which the report still reads, and
// today's.
const std::string kHeader = "op,B,T,H,K,V,impl,ms,call_ms\n";
const std::string kHeaderDtype = "op,B,T,H,K,V,dtype,impl,ms,call_ms\n";

}  // namespace

TEST_CASE("the kernel report of a fixture CSV matches the golden Markdown") {
  const auto t = report::read_kernel_timings(kDir + "kernels.csv");
  CHECK(t.rows.size() == 12);
  REQUIRE(t.provenance.size() == 4);
  CHECK(t.provenance[0] == std::make_pair(std::string("device"), std::string("Test GPU (fixture)")));
  testing::check_golden(report::render_kernel_markdown(t), kDir + "golden-kernels.md");
}

TEST_CASE("the kernel report states targets met and missed, ratios, and what is missing") {
  const auto md = report::render_kernel_markdown(report::read_kernel_timings(kDir + "kernels.csv"));
  // delta rule 16 x 2K: 0.5 ms against FLA's 1.0 and the 0.60 target; gated 16 x 2K: 0.7 against 0.55.
  CHECK(md.find("| delta_rule B16 x T2048, H16, K128 V128 | 0.5000 | 1.0000 | 0.50 | 0.5400 |") != std::string::npos);
  CHECK(md.find("0.600 (met)") != std::string::npos);
  CHECK(md.find("0.550 (missed)") != std::string::npos);
  CHECK(md.find("| delta_rule B1 x T32768, H16, K128 V128 | missing | 1.6000 | n/a | 7.1200 |") != std::string::npos);
  CHECK(md.find("0.010 (met)") != std::string::npos);  // decode B=1: 0.008 ms
  CHECK(md.find("| 0.060 |") != std::string::npos);     // decode B=64: untimed, the target alone
}

TEST_CASE("the kernel report's CSV derives throughput and the floor from the registry") {
  testing::TempDir dir("deltabench-kernels-test");
  const auto w = report::write_kernel_report(report::read_kernel_timings(kDir + "kernels.csv"), dir.path().string());
  const auto csv = read_file((dir.path() / "table.csv").string());
  // 16 x 2048 tokens in 0.5 ms (0.52 ms from an idle GPU); 537 MB in 0.5 ms; the floor of that case over 0.5 ms.
  const bench::KernelCase c = bench::kernel_cases().cases[0];  // delta rule, 16 x 2048
  const double pct = 100.0 * bench::floor_ms(c, bench::Rates{}) / 0.5;  // no measured rates in the fixture
  CHECK(csv.find(fmt::format("delta_rule,16,2048,16,128,128,bf16,deltabench,0.500000,0.520000,6.5536e+07,{:.6g},{:.6g},"
                             "{:.3f},0.6\n",
                             bench::case_bytes(c) / 0.5e-3 / 1e9, bench::case_flops(c) / 0.5e-3 / 1e12, pct)) !=
        std::string::npos);
  CHECK(read_file((dir.path() / "table.tex").string()).find("\\begin{tabular}{lrrrrrrrrr}") != std::string::npos);
  // The registry's sweep at B x T = 32768 has the fixture's 2K and 8K points (32K: ours missing), the sweep at
  // B = 1 its 32K point (FLA's); the sweep at head dim 64 none, so no figure.
  const auto dat = read_file((dir.path() / "throughput_tokens_32k.dat").string());
  CHECK(dat.find("# delta_rule | deltabench\n2048 65.536000\n8192 54.613333\n\n") != std::string::npos);
  CHECK(read_file((dir.path() / "throughput_batch_1.dat").string()).find("# delta_rule | fla\n32768 20.480000\n") !=
        std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "throughput_head_dim_64.dat"));
  // The decode sweep goes over B: its B = 1 point (one token in 0.008 ms) at x = 1, and B on the axis.
  CHECK(read_file((dir.path() / "throughput_decode.dat").string())
            .find("# decode_gated_delta_rule | deltabench\n1 0.125000\n") != std::string::npos);
  const auto gp = read_file((dir.path() / "throughput_decode.gp").string());
  CHECK(gp.find("set xlabel \"B (sequences, T = 1)\"") != std::string::npos);
  CHECK(gp.find("set xtics (\"1\" 1, \"16\" 16, \"256\" 256)") != std::string::npos);
  CHECK(read_file((dir.path() / "throughput_tokens_32k.gp").string()).find("set xlabel \"T (tokens per sequence)\"") !=
        std::string::npos);
  // Three figures in all (tokens_32k, batch_1 and decode): without gnuplot, one warning each.
  testing::check_figure(dir.path(), "throughput_tokens_32k", w.warnings.size(), "gated_delta_rule", 3);
}

TEST_CASE("a bad kernel timings CSV is an error naming the line, the expected and the actual") {
  CHECK(error_of("op,B,T\n").find("bad.csv:1: expected the header 'op,B,T,H,K,V,dtype,impl,ms,call_ms' (or "
                                  "'op,B,T,H,K,V,impl,ms,call_ms'), got 'op,B,T'") != std::string::npos);
  CHECK(error_of("# device: x\n").find("no header line") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,deltabench\n").find("bad.csv:2: expected 9 fields") !=
        std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,triton,1.0,2\n")
            .find("bad.csv:2: column impl: expected deltabench, fla, torch-sdpa or deltabench-reference, got 'triton'") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,fla,fast,2\n")
            .find("bad.csv:2: column ms: expected a number, got 'fast'") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,fla,-1,2\n")
            .find("column ms: expected a positive time, got '-1'") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2.5,16,128,128,fla,1,2\n")
            .find("column T: expected a positive whole number, got '2.5'") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,1024,16,128,128,fla,1,2\n")
            .find("bad.csv:2: delta_rule B=16 T=1024 H=16 K=128 V=128 bf16 is not a case of the registry (") !=
        std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,fla,1,2\ndelta_rule,16,2048,16,128,128,fla,2,3\n")
            .find("bad.csv:3: a second row for delta_rule/16/2048/16/128/128/bf16/fla") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,fla,1,0\n")
            .find("column call_ms: expected a positive time, got '0'") != std::string::npos);
  CHECK(error_of(kHeader + "delta_rule,16,2048,16,128,128,fla,1,2\n") == "");
  // Today's header, with the dtype column: the registry's fp16 cases are cases of their own.
  CHECK(error_of(kHeaderDtype + "delta_rule,16,2048,16,128,128,bf16,fla,1,2\ndelta_rule,16,2048,16,128,128,fp16,fla,1,2\n") ==
        "");
  CHECK(error_of(kHeaderDtype + "delta_rule,16,2048,16,128,128,fla,1,2\n").find("bad.csv:2: expected 10 fields") !=
        std::string::npos);
  CHECK(error_of(kHeaderDtype + "delta_rule,16,2048,16,128,128,fp8,fla,1,2\n")
            .find("bad.csv:2: column dtype: expected bf16 or fp16, got 'fp8'") != std::string::npos);
  CHECK(error_of(kHeaderDtype + "delta_rule,1,65536,16,128,128,fp16,fla,1,2\n")
            .find("bad.csv:2: delta_rule B=1 T=65536 H=16 K=128 V=128 fp16 is not a case of the registry (") !=
        std::string::npos);
  CHECK_THROWS_WITH(report::read_kernel_timings("/nonexistent/kernels.csv"),
                    "/nonexistent/kernels.csv: cannot read the kernel timings");
}

TEST_CASE("the kernel report's floor uses the rates measured in the run, and says which it used") {
  testing::TempDir dir("deltabench-kernels-test");
  const auto path = (dir.path() / "measured.csv").string();
  std::ofstream(path) << "# device: Test GPU\n# copy_GB_per_s: 4000\n# matmul_TFLOP_per_s: 700\n" << kHeader
                      << "delta_rule,16,2048,16,128,128,deltabench,0.5,0.52\n";
  const auto t = report::read_kernel_timings(path);
  CHECK_THAT(report::render_kernel_markdown(t),
             testing::contains("4.00 TB/s and 700 TFLOP/s (this machine's copy and bf16 matrix rates, measured in the run)"));
  report::write_kernel_report(t, dir.path().string());
  const bench::KernelCase c = bench::kernel_cases().cases[0];
  bench::Rates measured;
  measured.bytes_per_s = 4e12, measured.flops_per_s = 700e12;
  CHECK_THAT(read_file((dir.path() / "table.csv").string()),
             testing::contains(fmt::format(",{:.3f},0.6\n", 100.0 * bench::floor_ms(c, measured) / 0.5)));
  CHECK_THAT(report::render_kernel_markdown(report::read_kernel_timings(kDir + "kernels.csv")),
             testing::contains("(the H100's nominal rates: the timings carry no measured ones)"));
}
