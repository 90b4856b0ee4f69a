# ccache for C++ and CUDA. Precompiled headers change the preprocessed text ccache hashes, so it
# needs the pch_defines and time_macros sloppiness to hit at all (ccache manual, "Precompiled headers").
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(_ccache ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${CCACHE_PROGRAM})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_ccache})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_ccache})
  message(STATUS "deltabench: ccache ${CCACHE_PROGRAM}")
endif()
