# Compiler flags shared by every target of the project.
add_compile_options(-Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes
                    -Wmissing-prototypes -Wno-unused-parameter -fno-common)
if(MOS_WERROR)
  add_compile_options(-Werror)
endif()
add_compile_definitions(_GNU_SOURCE)

if(MOS_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(MOS_FUZZ AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "MOS_FUZZ needs clang (libFuzzer): configure with -DCMAKE_C_COMPILER=clang")
endif()

# With fuzzing on, every library is built with coverage instrumentation so libFuzzer sees
# into the parsers it drives.
if(MOS_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
