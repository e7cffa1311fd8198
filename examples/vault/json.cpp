// Boost.JSON's implementation, compiled once (header-only mode: no extra library to install).
#include <boost/json/src.hpp>
