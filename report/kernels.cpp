#include "report/kernels.h"

#include "bench/kernel_cases.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

namespace deltabench::report {
namespace {

using bench::KernelCase;

const std::vector<KernelCase>& registry() { return bench::kernel_cases().cases; }

// deltabench-reference: deltabench's reference ops (ATen), timed beside the kernels in forward + backward.
const std::vector<std::string> kImpls = {"deltabench", "fla", "torch-sdpa", "deltabench-reference"};
const std::vector<std::string> kCurveImpls = {"deltabench", "fla", "torch-sdpa"};

bool same_shape(const KernelCase& c, const KernelTiming& t) {
  return c.op == t.op && c.B == t.B && c.T == t.T && c.H == t.H && c.K == t.K && c.V == t.V && c.dtype == t.dtype;
}

std::string case_label(const KernelCase& c) {
  return fmt::format("{} B{} x T{}, H{}, K{} V{}{}", c.op, c.B, c.T, c.H, c.K, c.V, c.dtype == "bf16" ? "" : ", " + c.dtype);
}

const KernelTiming* find_row(const KernelTimings& t, const KernelCase& c, const std::string& impl) {
  for (const auto& r : t.rows) {
    if (r.impl == impl && same_shape(c, r)) return &r;
  }
  return nullptr;
}

// One time of a row (ms or call_ms), if the row is there.
std::optional<double> find_ms(const KernelTimings& t, const KernelCase& c, const std::string& impl,
                              double KernelTiming::*time = &KernelTiming::ms) {
  const auto* r = find_row(t, c, impl);
  return r ? std::optional<double>(r->*time) : std::nullopt;
}

// The SDPA case of the registry with the same pass, batch, length, heads and head dim, if any.
std::optional<KernelCase> sdpa_beside(const KernelCase& c) {
  const std::string_view sdpa = bench::is_fwd_bwd(c) ? "fwd_bwd_sdpa" : "sdpa";
  for (const auto& s : registry()) {
    if (s.op == sdpa && s.B == c.B && s.T == c.T && s.H == c.H && s.K == c.K && s.dtype == c.dtype) return s;
  }
  return std::nullopt;
}

std::string ms_text(std::optional<double> ms) { return ms ? fmt::format("{:.4f}", *ms) : "missing"; }

std::string provenance_text(const KernelTimings& t) {
  std::string out;
  for (const auto& [key, value] : t.provenance) out += (out.empty() ? "" : "; ") + key + ": " + value;
  return out.empty() ? "no provenance lines in the CSV." : out + ".";
}

using bench::is_decode;

// The floor's rates: those kernels_bench measured in the run (the CSV's copy_GB_per_s and
// matmul_TFLOP_per_s lines), else the nominal H100 rates of the reports before the measurement.
bench::Rates rates_of(const KernelTimings& t) {
  bench::Rates r;
  std::optional<double> copy, matmul;
  for (const auto& [key, value] : t.provenance) {
    try {
      if (key == "copy_GB_per_s") copy = std::stod(value) * 1e9;
      if (key == "matmul_TFLOP_per_s") matmul = std::stod(value) * 1e12;
    } catch (const std::exception&) {
      throw ReportError(fmt::format("the kernel timings' line '# {}: {}': expected a number", key, value));
    }
  }
  if (copy && matmul && *copy > 0 && *matmul > 0) {
    r.bytes_per_s = *copy, r.flops_per_s = *matmul, r.measured = true;
  }
  return r;
}

std::string rates_text(const bench::Rates& r) {
  return fmt::format("{:.2f} TB/s and {:.0f} TFLOP/s ({})", r.bytes_per_s / 1e12, r.flops_per_s / 1e12,
                     r.measured ? "this machine's copy and bf16 matrix rates, measured in the run"
                                : "the H100's nominal rates: the timings carry no measured ones");
}

// The three tables: the chunked forwards (with SDPA beside), the decode steps, and forward + backward
// (with the reference ops and SDPA beside).
std::vector<Table> tables(const KernelTimings& t) {
  const auto rates = rates_of(t);
  Table forward{"Chunked forward, bf16 (fp16 where the case says so)",
                "Median ms of 15 calls, L2 flushed before each. ms: the GPU's time, host launch costs hidden behind a "
                "spin kernel; call ms: the call from an idle GPU, host costs included (Python for FLA). The floor is "
                "the larger of the memory time (q, k, v read and o written) and the arithmetic time at " +
                    rates_text(rates) + "; SDPA is torch's FlashAttention, causal, at the same B, T, H and head dim",
                {"case", "deltabench ms", "FLA ms", "deltabench / FLA", "SDPA ms", "floor ms", "deltabench % of floor",
                 "target ms", "deltabench call ms", "FLA call ms"},
                {}};
  Table decode{"Decode step, fp32 state",
               "Median ms per step of 100 steps, L2 flushed before each 100, ms and call ms as above; deltabench "
               "replays a CUDA graph, FLA (fused_recurrent_gated_delta_rule) is called from Python; the floor is the "
               "state read and written once, at the rates above",
               {"case", "deltabench ms", "FLA ms", "deltabench / FLA", "floor ms", "deltabench % of floor", "target ms",
                "deltabench call ms", "FLA call ms"},
               {}};
  Table train{"Forward + backward, bf16 (fp16 where the case says so)",
              "Median ms of 15 calls of the op and the gradients of all its inputs for a fixed do, timed as above. "
              "deltabench: its training kernels (backend = kernel); reference: deltabench's reference ops (ATen "
              "autograd); FLA's chunk ops with its Hopper guard for the gated backward lifted (timing only). The floor "
              "counts the forward's bytes, then q, k, v and do read and dq, dk, dv written, and three times the "
              "forward's FLOPs. Targets: FLA's forward + backward on the H200 (issue 13)",
              {"case", "deltabench ms", "reference ms", "FLA ms", "deltabench / FLA", "SDPA ms", "floor ms",
               "deltabench % of floor", "target ms", "deltabench call ms", "FLA call ms"},
              {}};
  for (const auto& c : registry()) {
    if (c.op.ends_with("sdpa")) continue;
    const auto ours = find_ms(t, c, "deltabench"), fla = find_ms(t, c, "fla");
    if (!c.fixed && !ours && !fla) continue;  // a sweep's case not timed in this run
    const double floor = bench::floor_ms(c, rates);
    std::vector<std::string> row = {case_label(c), ms_text(ours)};
    if (bench::is_fwd_bwd(c)) row.push_back(ms_text(find_ms(t, c, "deltabench-reference")));
    row.push_back(ms_text(fla));
    row.push_back(ours && fla ? fmt::format("{:.2f}", *ours / *fla) : "n/a");
    if (!is_decode(c)) {
      const auto sdpa = sdpa_beside(c);
      row.push_back(sdpa ? ms_text(find_ms(t, *sdpa, "torch-sdpa")) : "n/a");
    }
    row.push_back(fmt::format("{:.4f}", floor));
    row.push_back(ours ? fmt::format("{:.1f}%", 100.0 * floor / *ours) : "missing");
    std::string target = "none";
    if (c.target_ms > 0) {
      target = fmt::format("{:.3f}", c.target_ms);
      if (ours) target += *ours <= c.target_ms ? " (met)" : " (missed)";
    }
    row.push_back(target);
    row.push_back(ms_text(find_ms(t, c, "deltabench", &KernelTiming::call_ms)));
    row.push_back(ms_text(find_ms(t, c, "fla", &KernelTiming::call_ms)));
    (is_decode(c) ? decode : bench::is_fwd_bwd(c) ? train : forward).rows.push_back(row);
  }
  return {forward, decode, train};
}

// Tokens/s against T (against B for a sweep over the batch) for one sweep of the registry: a panel per
// op of the sweep (SDPA's ops are lines in the panels of their pass), a line per implementation.
struct Curve {
  std::string panel, impl;
  std::vector<std::pair<int64_t, double>> points;  // (T or B, million tokens/s)
};

// The panels a sweep's figure draws: those with a point of ours or FLA's (SDPA alone is no reason for a
// panel), kCurveImpls.size() curves each; none: the sweep has no figure.
std::vector<Curve> curves(const KernelTimings& t, const bench::Sweep& sweep) {
  std::vector<Curve> out;
  for (const auto& op : sweep.ops) {
    if (op.ends_with("sdpa")) continue;
    const std::string sdpa = op.starts_with("fwd_bwd_") ? "fwd_bwd_sdpa" : "sdpa";
    std::vector<Curve> panel;
    bool drawn = false;
    for (const auto& impl : kCurveImpls) {
      Curve curve{op, impl, {}};
      for (const auto& c : registry()) {
        const bool in_sweep = std::find(c.sweeps.begin(), c.sweeps.end(), sweep.name) != c.sweeps.end();
        const bool in_panel = impl == "torch-sdpa" ? c.op == sdpa : c.op == op;
        if (!in_sweep || !in_panel) continue;
        if (const auto ms = find_ms(t, c, impl)) {
          curve.points.emplace_back(sweep.over_batch() ? c.B : c.T, c.B * c.T / (*ms * 1e3));
        }
      }
      std::sort(curve.points.begin(), curve.points.end());
      drawn = drawn || (impl != "torch-sdpa" && !curve.points.empty());
      panel.push_back(curve);
    }
    if (drawn) out.insert(out.end(), panel.begin(), panel.end());
  }
  return out;
}

// The sweeps with at least one timed point, each a figure throughput_<sweep>.{dat,gp,png,svg} with a
// panel for each of its ops that has a point. Both axes are logarithmic, their ranges fixed from the
// sweep's lengths (or batches) and the panel's points (gnuplot cannot range a single point on a log axis).
std::vector<std::string> write_throughput_figures(const KernelTimings& t, const std::filesystem::path& dir, Written& w) {
  std::vector<std::string> names;
  for (const auto& sweep : bench::kernel_cases().sweeps) {
    const auto cs = curves(t, sweep);
    if (cs.empty()) continue;
    const std::string name = "throughput_" + sweep.name;
    std::string data;
    for (const auto& c : cs) {
      data += "# " + c.panel + " | " + c.impl + "\n";
      for (const auto& [T, mtok] : c.points) data += fmt::format("{} {:.6f}\n", T, mtok);
      if (c.points.empty()) data += "nan nan\n";  // an empty block would shift gnuplot's indices
      data += "\n\n";
    }
    write_file(dir / (name + ".dat"), data, w);
    const size_t panels = cs.size() / kCurveImpls.size(), columns = std::min<size_t>(panels, 3);
    const size_t rows = (panels + columns - 1) / columns;
    const auto& axis = sweep.axis();
    const auto [x_min, x_max] = std::minmax_element(axis.begin(), axis.end());
    std::string body = fmt::format("set multiplot layout {},{} title {}\n", rows, columns,
                                   gnuplot_quote("Throughput, bf16, " + sweep.title));
    body += fmt::format("set logscale xy 2\nset format y \"%g\"\nset xrange [{}:{}]\nset grid\n", *x_min / 1.5,
                        *x_max * 1.5);
    std::string tics;  // every other point, as 512, 2K, 8K, ...
    for (size_t i = 0; i < axis.size(); i += 2) {
      const int64_t x = axis[i];
      tics += fmt::format("{}\"{}\" {}", tics.empty() ? "" : ", ",
                          x % 1024 == 0 ? fmt::format("{}K", x / 1024) : std::to_string(x), x);
    }
    body += "set xtics (" + tics + ")\n";
    body += sweep.over_batch() ? fmt::format("set xlabel \"B (sequences, T = {})\"\n", sweep.T[0])
                               : std::string("set xlabel \"T (tokens per sequence)\"\n");
    body += "set ylabel \"million tokens/s\"\nset key below\n";
    for (size_t panel = 0; panel < cs.size(); panel += kCurveImpls.size()) {
      double lo = 0, hi = 0;
      for (size_t i = 0; i < kCurveImpls.size(); ++i) {
        for (const auto& [T, mtok] : cs[panel + i].points) {
          lo = lo == 0 ? mtok : std::min(lo, mtok);
          hi = std::max(hi, mtok);
        }
      }
      body += fmt::format("set title {}\nset yrange [{:.6g}:{:.6g}]\nplot ", gnuplot_quote(cs[panel].panel), lo / 2, hi * 2);
      bool first = true;
      for (size_t i = 0; i < kCurveImpls.size(); ++i) {
        const auto& curve = cs[panel + i];
        // SDPA has no decode step: no key for a line it cannot have. An implementation without a point in
        // a panel it could have says so in the key. Each implementation keeps its colour in every panel.
        if (curve.points.empty() && curve.impl == "torch-sdpa") continue;
        const std::string title = curve.points.empty() ? curve.impl + " (not timed)" : curve.impl;
        body += fmt::format("{}'{}.dat' index {} using 1:2 with linespoints lw 2 pt 7 lt {} title {}",
                            first ? "" : ", \\\n     ", name, panel + i, i + 1, gnuplot_quote(title));
        first = false;
      }
      body += "\n";
    }
    body += "unset multiplot\n";
    // At least 560 pixels wide: the figure's title is as long as a row of three panels is wide.
    write_file(dir / (name + ".gp"),
               png_and_svg(name, fmt::format("{},{}", std::max<size_t>(330 * columns, 560), 300 * rows + 60), body), w);
    render(dir, name + ".gp", {name + ".png", name + ".svg"}, w);
    names.push_back(name);
  }
  return names;
}

double parse_number(const std::string& text, const std::string& where, const std::string& column) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) {
    throw ReportError(fmt::format("{}: column {}: expected a number, got '{}'", where, column, text));
  }
  return value;
}

}  // namespace

KernelTimings read_kernel_timings(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ReportError(path + ": cannot read the kernel timings");
  const std::string kHeader = "op,B,T,H,K,V,dtype,impl,ms,call_ms";
  const std::string kHeaderBf16 = "op,B,T,H,K,V,impl,ms,call_ms";  // written before the registry had dtypes
  bool with_dtype = true;
  KernelTimings out;
  std::set<std::string> seen;
  std::string line;
  bool header = false;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = fmt::format("{}:{}", path, number);
    if (line.empty()) continue;
    if (line.rfind("# ", 0) == 0) {
      const auto colon = line.find(": ");
      if (colon != std::string::npos) out.provenance.emplace_back(line.substr(2, colon - 2), line.substr(colon + 2));
      continue;
    }
    if (!header) {
      if (line != kHeader && line != kHeaderBf16) {
        throw ReportError(fmt::format("{}: expected the header '{}' (or '{}'), got '{}'", where, kHeader, kHeaderBf16, line));
      }
      with_dtype = line == kHeader;
      header = true;
      continue;
    }
    std::vector<std::string> f;
    std::stringstream fields(line);
    for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
    const size_t want = with_dtype ? 10 : 9;
    if (f.size() != want) {
      throw ReportError(fmt::format("{}: expected {} fields ({}), got {}", where, want, with_dtype ? kHeader : kHeaderBf16,
                                    f.size()));
    }
    KernelTiming t;
    t.op = f[0];
    if (with_dtype) {
      t.dtype = f[6];
      if (std::find(std::begin(bench::kDtypes), std::end(bench::kDtypes), t.dtype) == std::end(bench::kDtypes)) {
        throw ReportError(fmt::format("{}: column dtype: expected bf16 or fp16, got '{}'", where, t.dtype));
      }
      f.erase(f.begin() + 6);  // the rest as in the old layout
    }
    const char* names[] = {"B", "T", "H", "K", "V"};
    int64_t* dims[] = {&t.B, &t.T, &t.H, &t.K, &t.V};
    for (int i = 0; i < 5; ++i) {
      const double x = parse_number(f[1 + i], where, names[i]);
      if (x != std::floor(x) || x < 1) {
        throw ReportError(fmt::format("{}: column {}: expected a positive whole number, got '{}'", where, names[i], f[1 + i]));
      }
      *dims[i] = static_cast<int64_t>(x);
    }
    t.impl = f[6];
    t.ms = parse_number(f[7], where, "ms");
    t.call_ms = parse_number(f[8], where, "call_ms");
    if (std::find(kImpls.begin(), kImpls.end(), t.impl) == kImpls.end()) {
      throw ReportError(fmt::format("{}: column impl: expected deltabench, fla, torch-sdpa or deltabench-reference, got '{}'", where, t.impl));
    }
    for (const auto& [value, column, text] : {std::tuple{t.ms, "ms", f[7]}, std::tuple{t.call_ms, "call_ms", f[8]}}) {
      if (!(value > 0) || !std::isfinite(value)) {
        throw ReportError(fmt::format("{}: column {}: expected a positive time, got '{}'", where, column, text));
      }
    }
    bool known = false;
    for (const auto& c : registry()) known = known || same_shape(c, t);
    if (!known) {
      throw ReportError(fmt::format("{}: {} B={} T={} H={} K={} V={} {} is not a case of the registry ({})", where, t.op,
                                    t.B, t.T, t.H, t.K, t.V, t.dtype, bench::kernel_cases_path()));
    }
    const std::string key = fmt::format("{}/{}/{}/{}/{}/{}/{}/{}", t.op, t.B, t.T, t.H, t.K, t.V, t.dtype, t.impl);
    if (!seen.insert(key).second) throw ReportError(fmt::format("{}: a second row for {}", where, key));
    out.rows.push_back(t);
  }
  if (!header) throw ReportError(fmt::format("{}: no header line '{}'", path, kHeader));
  return out;
}

namespace {

// The sweeps with a timed point: each is a figure.
std::vector<const bench::Sweep*> timed_sweeps(const KernelTimings& t) {
  std::vector<const bench::Sweep*> out;
  for (const auto& sweep : bench::kernel_cases().sweeps) {
    if (!curves(t, sweep).empty()) out.push_back(&sweep);  // as write_throughput_figures draws it
  }
  return out;
}

std::string kernel_markdown(const KernelTimings& timings, const std::vector<Table>& ts) {
  std::string out = "# CUDA kernels beside FLA and FlashAttention\n\n" + provenance_text(timings) + "\n";
  for (const auto& t : ts) out += "\n## " + t.title + "\n\n" + t.caption + ".\n\n" + markdown(t);
  for (const auto* sweep : timed_sweeps(timings)) {
    out += fmt::format("\n![throughput against {}, {}](throughput_{}.png)\n",
                       sweep->over_batch() ? "batch" : "sequence length", sweep->title, sweep->name);
  }
  return out;
}

}  // namespace

std::string render_kernel_markdown(const KernelTimings& timings) { return kernel_markdown(timings, tables(timings)); }

Written write_kernel_report(const KernelTimings& timings, const std::string& out_dir) {
  Written w;
  const std::filesystem::path dir(out_dir);
  create_output_dir(dir);
  const auto ts = tables(timings);
  write_file(dir / "table.md", kernel_markdown(timings, ts), w);
  std::string tex = "% deltabench kernel report (needs \\usepackage{booktabs}); " + provenance_text(timings) + "\n";
  for (const auto& t : ts) tex.append("\n").append(latex(t));  // not "\n" + ...: GCC 12 warns falsely
  write_file(dir / "table.tex", tex, w);
  const auto rates = rates_of(timings);
  std::string csv = "op,B,T,H,K,V,dtype,impl,ms,call_ms,tokens_per_s,GB_per_s,TFLOP_per_s,pct_of_floor,target_ms\n";
  for (const auto& c : registry()) {
    for (const auto& impl : kImpls) {
      const auto* r = find_row(timings, c, impl);
      if (!r) continue;
      const double s = r->ms / 1e3;
      csv += fmt::format("{},{},{},{},{},{},{},{},{:.6f},{:.6f},{:.6g},{:.6g},{:.6g},{:.3f},{}\n", c.op, c.B, c.T, c.H, c.K,
                         c.V, c.dtype, impl, r->ms, r->call_ms, c.B * c.T / s, bench::case_bytes(c) / s / 1e9,
                         bench::case_flops(c) / s / 1e12, 100.0 * bench::floor_ms(c, rates) / r->ms,
                         c.target_ms > 0 ? fmt::format("{}", c.target_ms) : "");
    }
  }
  write_file(dir / "table.csv", csv, w);
  write_throughput_figures(timings, dir, w);
  return w;
}

}  // namespace deltabench::report
