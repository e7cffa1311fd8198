// awaitdb::migrations: the set given in code or read from a directory.
#include <awaitdb/error.hpp>
#include <awaitdb/migrate.hpp>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

namespace awaitdb {
namespace {

[[noreturn]] void bad_name(const std::string& file, const std::string& why) {
  throw error(sqlstate::syntax_error, "migration file " + file + ": " + why +
                                          " (expected NNNN_name.sql, NNNN_name.postgresql.sql "
                                          "or NNNN_name.sqlite.sql)");
}

void check_version(std::int64_t version, const std::string& origin) {
  if (version <= 0)
    throw error(
        sqlstate::invalid_parameter,
        "migration " + origin + ": the version must be above 0, not " + std::to_string(version));
}

std::string read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof())
    throw error(sqlstate::undefined_file, "cannot read migration file " + path.string());
  return std::move(text).str();
}

struct file_name {
  std::int64_t version = 0;
  std::string name;
  std::optional<engine> only;  // a per-engine variant
};

// NNNN_name[.postgresql|.sqlite].sql; nullopt for a file that is no .sql file at all.
std::optional<file_name> parse_file_name(const std::string& file) {
  std::string_view rest = file;
  if (!rest.ends_with(".sql")) return std::nullopt;
  rest.remove_suffix(4);
  file_name out;
  if (rest.ends_with(".postgresql")) {
    out.only = engine::postgres;
    rest.remove_suffix(11);
  } else if (rest.ends_with(".sqlite")) {
    out.only = engine::sqlite;
    rest.remove_suffix(7);
  }
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9')
    ++digits;
  if (digits == 0) bad_name(file, "no version number at the start");
  if (digits > 18) bad_name(file, "the version number is too long");
  if (digits == rest.size() || rest[digits] != '_')
    bad_name(file, "no `_` and name after the version number");
  out.name = std::string(rest.substr(digits + 1));
  if (out.name.empty()) bad_name(file, "no name after the version number");
  if (out.name.find('.') != std::string::npos)
    bad_name(file, "a dot in the name (or an engine other than postgresql and sqlite)");
  out.version = std::stoll(std::string(rest.substr(0, digits)));
  return out;
}

}  // namespace

migrations::entry& migrations::slot(std::int64_t version, const std::string& name,
                                    const std::string& origin) {
  check_version(version, origin);
  auto it = std::lower_bound(entries_.begin(), entries_.end(), version,
                             [](const entry& e, std::int64_t v) { return e.version < v; });
  if (it != entries_.end() && it->version == version) {
    if (it->name != name)
      throw error(sqlstate::invalid_parameter,
                  "migration " + std::to_string(version) + " has two names: " + it->name + " (" +
                      it->origin + ") and " + name + " (" + origin + ")");
    it->origin += ", " + origin;
    return *it;
  }
  entry fresh;
  fresh.version = version;
  fresh.name = name;
  fresh.origin = origin;
  return *entries_.insert(it, std::move(fresh));
}

migrations& migrations::add(std::int64_t version, std::string name, std::string sql) {
  entry& e = slot(version, name, "in code");
  if (e.shared || e.postgresql || e.sqlite)
    throw error(sqlstate::invalid_parameter,
                "migration " + std::to_string(version) + " (" + name + ") is added twice");
  e.shared = std::move(sql);
  return *this;
}

migrations& migrations::add(std::int64_t version, std::string name, std::string postgresql_sql,
                            std::string sqlite_sql) {
  entry& e = slot(version, name, "in code");
  if (e.shared || e.postgresql || e.sqlite)
    throw error(sqlstate::invalid_parameter,
                "migration " + std::to_string(version) + " (" + name + ") is added twice");
  e.postgresql = std::move(postgresql_sql);
  e.sqlite = std::move(sqlite_sql);
  return *this;
}

migrations migrations::from_directory(const std::filesystem::path& directory) {
  std::error_code ec;
  std::filesystem::directory_iterator it(directory, ec);
  if (ec)
    throw error(sqlstate::undefined_file,
                "cannot read the migrations directory " + directory.string() + ": " + ec.message());
  std::vector<std::filesystem::path> files;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec)
    throw error(sqlstate::undefined_file,
                "cannot read the migrations directory " + directory.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());  // the same order, and the same messages, everywhere
  migrations out;
  for (const std::filesystem::path& path : files) {
    const std::string file = path.filename().string();
    const std::optional<file_name> parsed = parse_file_name(file);
    if (!parsed) continue;
    entry& e = out.slot(parsed->version, parsed->name, file);
    std::optional<std::string>& target = !parsed->only                     ? e.shared
                                         : *parsed->only == engine::sqlite ? e.sqlite
                                                                           : e.postgresql;
    if (target)  // (two files of one version and engine can only differ in their names)
      throw error(sqlstate::syntax_error, "two migration files for version " +
                                              std::to_string(parsed->version) + ": " + e.origin);
    target = read_whole(path);
  }
  return out;
}

}  // namespace awaitdb
