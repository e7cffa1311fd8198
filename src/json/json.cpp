// The compiled half of <awaitdb/json.hpp>: the awaitdb::json component, linked to Boost.JSON.
#include <awaitdb/error.hpp>
#include <awaitdb/json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace awaitdb::detail {

std::string json_text(const boost::json::value& v) {
  return boost::json::serialize(v);
}

boost::json::value parse_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec)
    throw error(sqlstate::invalid_text_representation, "the value is not valid JSON (" +
                                                           ec.message() + ", in " +
                                                           std::to_string(text.size()) + " bytes)");
  return v;
}

void json_kind_mismatch(const char* wanted) {
  throw error(sqlstate::datatype_mismatch, std::string("the JSON value is not ") + wanted);
}

void json_shape_mismatch(const char* why) {
  throw error(sqlstate::invalid_text_representation,
              std::string("the JSON value does not fit the type: ") + why);
}

}  // namespace awaitdb::detail
