#pragma once
// The output forms every report shares: a table as Markdown, LaTeX (booktabs) and CSV fields, files
// written whole (a reader never sees half a file), and gnuplot scripts rendered where gnuplot exists.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltabench::report {

struct ReportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every file a report writes, and what it could not do (no gnuplot, say).
struct Written {
  std::vector<std::string> files;
  std::vector<std::string> warnings;
};

// A table: the first column left-aligned, the others right-aligned. A row whose first field is empty
// is a rule in LaTeX.
struct Table {
  std::string title, caption;  // a suite report's Markdown prints its section's text for the caption,
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string markdown_note;  // and this under the title, what the section's text does not say
};

std::string markdown(const Table& t);
std::string latex(const Table& t);  // a table float; needs \usepackage{booktabs}
std::string latex_escape(const std::string& s);
std::string csv_field(const std::string& s);  // quoted where it holds a comma, quote or newline

// Creates `dir` (and its parents) for a report's files; throws ReportError naming it.
void create_output_dir(const std::filesystem::path& dir);

// Writes `text` to a temporary file beside `path`, then renames it; records the file in `w`.
void write_file(const std::filesystem::path& path, const std::string& text, Written& w);

// Runs gnuplot on `script` in `dir` and records `outputs`; without gnuplot, or when it fails, a warning.
void render(const std::filesystem::path& dir, const std::string& script, const std::vector<std::string>& outputs,
            Written& w);

std::string gnuplot_quote(const std::string& s);  // a gnuplot string literal

// A gnuplot script drawing `body` twice: into <stem>.png and <stem>.svg, `size` pixels ("720,420").
std::string png_and_svg(const std::string& stem, const std::string& size, const std::string& body);

}  // namespace deltabench::report
