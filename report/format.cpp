#include "report/format.h"

#include "sweep/process.h"

#include <fstream>

namespace deltabench::report {

std::string markdown(const Table& t) {
  std::string out = "| " + t.header[0];
  for (size_t i = 1; i < t.header.size(); ++i) out += " | " + t.header[i];
  out += " |\n|---";
  for (size_t i = 1; i < t.header.size(); ++i) out += "|---:";
  out += "|\n";
  for (const auto& row : t.rows) {
    out += "| " + row[0];
    for (size_t i = 1; i < row.size(); ++i) out += " | " + row[i];
    out += " |\n";
  }
  return out;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '_' || c == '%' || c == '&' || c == '#' || c == '$' || c == '{' || c == '}') out += '\\';
    if (c == '~') {
      out += "\\textasciitilde{}";
      continue;
    }
    if (c == '\\') {
      out += "\\textbackslash{}";
      continue;
    }
    out += c;
  }
  return out;
}

std::string latex(const Table& t) {
  std::string out = "\\begin{table}[t]\n\\centering\n\\caption{" + latex_escape(t.title) + ". " +
                    latex_escape(t.caption) + "}\n\\begin{tabular}{l" + std::string(t.header.size() - 1, 'r') +
                    "}\n\\toprule\n";
  for (size_t i = 0; i < t.header.size(); ++i) out += (i ? " & " : "") + latex_escape(t.header[i]);
  out += " \\\\\n\\midrule\n";
  for (const auto& row : t.rows) {
    if (row[0].empty()) {
      out += "\\midrule\n";
      continue;
    }
    for (size_t i = 0; i < row.size(); ++i) out += (i ? " & " : "") + latex_escape(row[i]);
    out += " \\\\\n";
  }
  return out + "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void create_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ReportError("cannot create " + dir.string() + ": " + ec.message());
}

void write_file(const std::filesystem::path& path, const std::string& text, Written& w) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw ReportError("cannot write " + tmp);
    out << text;
    if (!out.flush()) throw ReportError("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
  w.files.push_back(path.string());
}

void render(const std::filesystem::path& dir, const std::string& script, const std::vector<std::string>& outputs,
            Written& w) {
  if (!sweep::on_path("gnuplot")) {
    w.warnings.push_back("gnuplot is not on PATH: " + (dir / script).string() + " was written but not rendered");
    return;
  }
  // An argument vector, never a shell: the directory and script names are only ever arguments.
  const auto r = sweep::run_process({"gnuplot", script}, dir.string(), /*capture_stderr=*/true);
  if (!r.started || r.exit_code != 0) {
    std::ofstream(dir / "gnuplot.log") << r.output;
    w.warnings.push_back("gnuplot failed on " + (dir / script).string() + "; see " + (dir / "gnuplot.log").string());
    return;
  }
  for (const auto& f : outputs) {
    if (std::filesystem::exists(dir / f) && std::filesystem::file_size(dir / f) > 0) {
      w.files.push_back((dir / f).string());
    } else {
      w.warnings.push_back("gnuplot did not write " + (dir / f).string());
    }
  }
}

std::string gnuplot_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string png_and_svg(const std::string& stem, const std::string& size, const std::string& body) {
  return "set terminal pngcairo noenhanced size " + size + " font \"sans,10\"\nset output '" + stem + ".png'\n" + body +
         "set terminal svg noenhanced size " + size + " font \"sans,10\"\nset output '" + stem + ".svg'\n" + body;
}

}  // namespace deltabench::report
