# Compiles sql_literal_checks.cpp as it is (it must compile), then once per MISTAKE case (each must
# fail, the compiler naming the mistake).
# -DCXX=... -DSOURCE=... -DINCLUDE=...
set(flags -std=c++20 -fsyntax-only -I${INCLUDE})
execute_process(COMMAND ${CXX} ${flags} ${SOURCE} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the correct uses do not compile:\n${err}")
endif()
set(expected
  "1:the_SQL_uses_a_placeholder_beyond_the_arguments_given"
  "2:an_argument_is_given_that_no_placeholder_of_the_SQL_uses"
  "3:an_argument_does_not_fit_the_cast_written_after_its_placeholder"
  "4:an_argument_does_not_fit_the_cast_written_after_its_placeholder"
  "5:the_SQL_uses_a_placeholder_beyond_the_arguments_given"
  "6:an_argument_does_not_fit_the_cast_written_after_its_placeholder")
foreach(case ${expected})
  string(REPLACE ":" ";" parts ${case})
  list(GET parts 0 number)
  list(GET parts 1 message)
  execute_process(COMMAND ${CXX} ${flags} -DMISTAKE=${number} ${SOURCE}
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "${message}")
    message(FATAL_ERROR "mistake ${number}: expected an error naming ${message}, got (${rc}):\n${err}")
  endif()
endforeach()
