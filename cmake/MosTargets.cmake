# Helpers so every module declares its library, tests and fuzz targets the same way.

# mos_module_library(NAME SOURCES... [DEPS targets...])
# A static library mos_NAME with NAME/include as its public include directory.
function(mos_module_library name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(mos_${name} STATIC ${M_SOURCES})
  target_include_directories(mos_${name}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(mos_${name} PUBLIC ${M_DEPS})
  set_target_properties(mos_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  install(TARGETS mos_${name} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
endfunction()

# With MOS_TESTS off, test programs are still declared (so a module may set their properties
# without a guard) but left out of the default build, and no test is registered.

# mos_test_program(NAME SOURCES...): a program only tests run (drivers, victims, jobs).
function(mos_test_program name)
  if(MOS_TESTS)
    add_executable(${name} ${ARGN})
  else()
    add_executable(${name} EXCLUDE_FROM_ALL ${ARGN})
  endif()
endfunction()

# mos_add_test(NAME SOURCES... LIBS... LABELS... [TIMEOUT s] [ARGS ...])
# A test executable in build/bin registered with ctest under the given labels.
function(mos_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  mos_test_program(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  if(NOT MOS_TESTS)
    return()
  endif()
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()

# mos_add_script_test(NAME SCRIPT LABELS... [TIMEOUT s] [ARGS ...])
function(mos_add_script_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS;ARGS" ${ARGN})
  if(NOT MOS_TESTS)
    return()
  endif()
  add_test(NAME ${name} COMMAND ${script} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "MOS_BIN=${CMAKE_BINARY_DIR}/bin;MOS_SRC=${CMAKE_SOURCE_DIR}")
endfunction()

# mos_add_fuzz(NAME SOURCE LIBS... [SECONDS s] [CORPUS dir]): a libFuzzer target, run for a
# bounded time by ctest (label fuzz) when MOS_FUZZ is on. CORPUS is the target's seed folder
# (realistic inputs and every input that once crashed it): the fuzz run starts from it (new
# inputs go to a scratch folder in the build tree, never into the source), and a unit test
# NAME_corpus replays it in every build, so a fixed crash stays fixed without clang: with
# MOS_FUZZ the fuzzer itself with -runs=0, otherwise the source linked with tests/fuzz_replay.c.
function(mos_add_fuzz name source)
  cmake_parse_arguments(F "" "SECONDS;CORPUS" "LIBS" ${ARGN})
  if(NOT MOS_TESTS)
    return()
  endif()
  if(F_CORPUS)
    get_filename_component(seeds ${F_CORPUS} ABSOLUTE)
  endif()
  if(NOT MOS_FUZZ)
    if(F_CORPUS)
      add_executable(${name}_corpus ${source} ${CMAKE_SOURCE_DIR}/tests/fuzz_replay.c)
      target_link_libraries(${name}_corpus PRIVATE ${F_LIBS})
      add_test(NAME ${name}_corpus COMMAND ${name}_corpus ${seeds})
      set_tests_properties(${name}_corpus PROPERTIES LABELS unit TIMEOUT 120)
    endif()
    return()
  endif()
  if(NOT F_SECONDS)
    set(F_SECONDS 20)
  endif()
  add_executable(${name} ${source})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  set(dirs)
  if(F_CORPUS)
    set(scratch ${CMAKE_CURRENT_BINARY_DIR}/${name}.corpus)
    file(MAKE_DIRECTORY ${scratch})
    set(dirs ${scratch} ${seeds})
    add_test(NAME ${name}_corpus COMMAND ${name} -runs=0 ${seeds})
    set_tests_properties(${name}_corpus PROPERTIES LABELS unit TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${name} -max_total_time=${F_SECONDS} -timeout=10 -rss_limit_mb=1024
           -print_final_stats=1 ${dirs})
  math(EXPR tmo "${F_SECONDS} + 60")
  set_tests_properties(${name} PROPERTIES LABELS "fuzz" TIMEOUT ${tmo})
endfunction()
