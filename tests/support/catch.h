#pragma once
#include <string>
// Catch2 v2 (Debian 12, one header) and v3 (the GPU machine, split headers): tests include this.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;  // v2 spells it Approx
namespace deltabench::testing {
// A message holds `text`: CHECK_THAT(message, testing::contains("...")) in both versions.
inline auto contains(const std::string& text) { return Catch::Matchers::ContainsSubstring(text); }
}  // namespace deltabench::testing
#else
#include <catch2/catch.hpp>
namespace deltabench::testing {
inline auto contains(const std::string& text) { return Catch::Matchers::Contains(text); }
}  // namespace deltabench::testing
#endif
