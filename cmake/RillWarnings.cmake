# One warning set for every target of the project: the library, the rill command, the
# examples, the tests, the fuzz targets and the benchmarks (C peers included).
# RILL_WERROR turns the warnings into errors; scripts/test.sh builds with it on.
option(RILL_WERROR "Treat compiler warnings as errors" OFF)

function(rill_enable_warnings target)
  set(options -Wall -Wextra -Wpedantic)
  if(RILL_WERROR)
    list(APPEND options -Werror)
  endif()
  # Per language, so a target mixing C and C++ (and a compiler of each) gets the set it knows.
  # g++ 12's -Wmissing-field-initializers (in -Wextra) also fires on designated initializers
  # that leave members to their defaults, the way STYLE.md has option structs used
  # ({.port_number = 0}); clang does not warn there.
  target_compile_options(${target} PRIVATE
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:${options}>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-missing-field-initializers>
    $<$<AND:$<COMPILE_LANGUAGE:C>,$<C_COMPILER_ID:GNU,Clang>>:${options}>)
endfunction()
