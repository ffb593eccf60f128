// The upload folder on its own: which client file names become which paths, and that sizes
// are counted as bytes arrive, whatever the request claimed.
#include <gtest/gtest.h>

#include "digitflow/web/errors.hpp"
#include "digitflow/web/uploads.hpp"
#include "test_support.hpp"

namespace digitflow::web {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;

TEST(SafeRelativePath, KeepsFoldersAndRefusesWhatLeavesThem) {
  EXPECT_EQ(safe_relative_path("a.png"), fs::path("a.png"));
  EXPECT_EQ(safe_relative_path("scans/batch 1/a.png"), fs::path("scans/batch 1/a.png"));
  EXPECT_EQ(safe_relative_path("scans/ünïcode.png"), fs::path("scans/ünïcode.png"));
  EXPECT_EQ(safe_relative_path("folder/"),
            fs::path("folder"));  // a trailing slash is a folder's name
  for (const std::string& bad : std::vector<std::string>{
           std::string(""), std::string("../a.png"), std::string("a/../b.png"), std::string("a/.."),
           std::string("/etc/passwd"), std::string("C:/x.png"), std::string("a\\b.png"),
           std::string("a\0b.png", 7), std::string("a\nb.png"), std::string("a//b.png"),
           std::string("./a.png"), std::string("a/./b.png"), std::string(300, 'x'),
           std::string(2000, 'a')})
    EXPECT_THROW(safe_relative_path(bad), BadRequest) << '"' << bad.substr(0, 40) << '"';
}

TEST(UploadFolder, CountsBytesAndFilesAsTheyArriveAndCleansUp) {
  t::TempDir dir;
  fs::path root;
  {
    UploadFolder upload(dir.path(), UploadLimits{10, 25, 3});
    root = upload.path();
    EXPECT_EQ(root.parent_path(), dir.path());
    upload.begin_file("a/1.png");
    upload.append("0123456789", 10);
    upload.end_file();
    upload.begin_file("a/2.png");
    upload.append("0123456789", 10);
    EXPECT_THROW(upload.append("x", 1), TooLarge);  // 11 bytes in one file
    UploadFolder second(dir.path(), UploadLimits{10, 25, 3});
    second.begin_file("1");
    second.append("0123456789", 10);
    second.begin_file("2");
    second.append("0123456789", 10);
    second.begin_file("3");
    EXPECT_THROW(second.append("0123456789", 10), TooLarge);  // 30 bytes in the job
    EXPECT_THROW(second.begin_file("4"), TooLarge);           // a fourth file
    EXPECT_THROW(second.begin_file("1"), BadRequest);         // twice
    UploadFolder third(dir.path(), UploadLimits{10, 25, 3});
    third.begin_file("a");
    third.end_file();
    EXPECT_THROW(third.begin_file("a/b.png"), BadRequest);  // a file is not a folder
    EXPECT_THROW(third.begin_zip(), BadRequest);            // files, then a zip
  }
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace digitflow::web
