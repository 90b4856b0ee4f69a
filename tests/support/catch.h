#pragma once
// Catch2 v2 (Debian 12, one header) and v3 (the GPU machine, split headers): tests include this.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
using Catch::Approx;  // v2 spells it Approx
#else
#include <catch2/catch.hpp>
#endif
