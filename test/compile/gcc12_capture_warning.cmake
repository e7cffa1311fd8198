# Compiles gcc12_capture_warning.cpp twice: with AWAITDB_NO_GCC12_WARNING it must compile on
# every compiler; without, it must fail on g++ 12 naming the bug, and compile elsewhere.
# -DCXX=... -DSOURCE=... -DINCLUDE=... -DEXPECT_WARNING=ON|OFF [-DEXPECT_TEXT=regex]
if(NOT EXPECT_TEXT)
  set(EXPECT_TEXT "g\\+\\+ 12 destroys twice the captures")
endif()
set(flags -std=c++20 -fsyntax-only -Werror=deprecated-declarations -I${INCLUDE})
execute_process(COMMAND ${CXX} ${flags} -DAWAITDB_NO_GCC12_WARNING ${SOURCE}
  RESULT_VARIABLE silenced_rc ERROR_VARIABLE silenced_err)
if(NOT silenced_rc EQUAL 0)
  message(FATAL_ERROR "does not compile with AWAITDB_NO_GCC12_WARNING:\n${silenced_err}")
endif()
execute_process(COMMAND ${CXX} ${flags} ${SOURCE} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(EXPECT_WARNING)
  if(rc EQUAL 0 OR NOT err MATCHES "${EXPECT_TEXT}")
    message(FATAL_ERROR "expected the g++ 12 warning, got (${rc}):\n${err}")
  endif()
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "expected no warning:\n${err}")
endif()
