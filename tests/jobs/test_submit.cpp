// Submission and the drop folder: a job owns a copy of its pages, links that lead out of
// the folder are refused, nothing is left behind by a refused submission, and a READY
// folder is taken once, even across a crash between the move and the queue.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "digitflow/jobs/submit.hpp"
#include "test_support.hpp"

namespace digitflow::jobs {
namespace {

namespace fs = std::filesystem;
using digitflow::testing::TempDir;
using digitflow::testing::throws_with_message;

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool inside_of(const fs::path& path, const fs::path& folder) {
  const fs::path p = fs::weakly_canonical(path), f = fs::weakly_canonical(folder);
  return std::mismatch(f.begin(), f.end(), p.begin(), p.end()).first == f.end();
}

// Entries under `dir` (recursively), relative, sorted.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(e.path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

class SubmitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_.root = dir_ / "state";
    store_ = open_sqlite_store(state_.sqlite_file());
    User ana;
    ana.name = "ana";
    store_->add_user(ana);
    write(dir_ / "scans" / "a.png", "page a");
    write(dir_ / "scans" / "sub" / "b.png", "page b");
  }
  Submission submission(const fs::path& folder) {
    Submission s;
    s.folder = folder;
    s.owner = "ana";
    return s;
  }

  TempDir dir_;
  StateDir state_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(SubmitTest, TheJobGetsItsOwnCopyOfThePages) {
  const int64_t id = submit_job(*store_, state_, submission(dir_ / "scans"));
  const std::optional<Job> job = store_->job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->name, "scans");
  EXPECT_EQ(job->owner_name, "ana");
  EXPECT_EQ(job->state, JobState::queued);
  EXPECT_TRUE(inside_of(job->input_dir, state_.inputs()));
  fs::remove_all(dir_ / "scans");  // the user may delete theirs
  EXPECT_EQ(read(job->input_dir / "a.png"), "page a");
  EXPECT_EQ(read(job->input_dir / "sub" / "b.png"), "page b");
}

TEST_F(SubmitTest, NameModelAndTemplateAreKept) {
  write(dir_ / "form.yaml", "fields:\n  - name: amount\n    zone: [0.5, 0.5, 0.4, 0.2]\n    rule: amount\n");
  Submission s = submission(dir_ / "scans");
  s.name = "monday night";
  s.template_file = dir_ / "form.yaml";
  s.model = "/models/v2.safetensors";
  const auto job = store_->job(submit_job(*store_, state_, s));
  EXPECT_EQ(job->name, "monday night");
  EXPECT_EQ(job->model, "/models/v2.safetensors");
  ASSERT_FALSE(job->template_path.empty());
  EXPECT_TRUE(inside_of(job->template_path, state_.templates()));
  EXPECT_EQ(read(job->template_path), read(dir_ / "form.yaml"));
}

TEST_F(SubmitTest, ABadTemplateIsRefusedWithItsFileAndLine) {
  write(dir_ / "form.yaml", "fields:\n  - name: amount\n    zone: [0.5, 0.5]\n");
  Submission s = submission(dir_ / "scans");
  s.template_file = dir_ / "form.yaml";
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, s); }, {"form.yaml", "zone"}));
  EXPECT_TRUE(store_->jobs().empty());
  EXPECT_TRUE(tree(state_.inputs()).empty());
}

TEST_F(SubmitTest, ALinkLeadingOutsideIsRefusedAndNothingIsLeftBehind) {
  write(dir_ / "secret.txt", "private");
  fs::create_symlink(dir_ / "secret.txt", dir_ / "scans" / "sub" / "c.png");
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "scans")); },
                                               {"c.png", "outside the submitted folder"}));
  EXPECT_TRUE(store_->jobs().empty());
  EXPECT_TRUE(tree(state_.inputs()).empty()) << "a refused job left files in the state dir";
}

TEST_F(SubmitTest, ADirectoryLinkLeadingOutsideIsRefused) {
  fs::create_directories(dir_ / "elsewhere");
  write(dir_ / "elsewhere" / "x.png", "x");
  fs::create_directory_symlink(dir_ / "elsewhere", dir_ / "scans" / "more");
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "scans")); },
                                               {"more", "outside"}));
}

TEST_F(SubmitTest, ALinkInsideTheFolderIsTakenAsAFile) {
  fs::create_symlink("a.png", dir_ / "scans" / "copy-of-a.png");
  const auto job = store_->job(submit_job(*store_, state_, submission(dir_ / "scans")));
  EXPECT_FALSE(fs::is_symlink(job->input_dir / "copy-of-a.png"));
  EXPECT_EQ(read(job->input_dir / "copy-of-a.png"), "page a");
}

TEST_F(SubmitTest, MissingEmptyOrUnownedFoldersAreRefused) {
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "nope")); },
                                               {"nope", "no such folder"}));
  EXPECT_TRUE(throws_with_message<SubmitError>(
      [&] { submit_job(*store_, state_, submission(dir_ / "scans" / "a.png")); }, {"a.png", "not a folder"}));
  fs::create_directories(dir_ / "empty" / "sub");
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "empty")); },
                                               {"empty", "no files"}));
  Submission s = submission(dir_ / "scans");
  s.owner = "nobody";
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, s); },
                                               {"no user named 'nobody'", "digitflow user add"}));
  User ana = *store_->user_by_name("ana");
  ana.disabled = true;
  store_->update_user(ana);
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "scans")); },
                                               {"disabled"}));
  EXPECT_TRUE(store_->jobs().empty());
}

TEST_F(SubmitTest, ASpecialFileIsRefused) {
  ASSERT_EQ(mkfifo((dir_ / "scans" / "pipe").c_str(), 0600), 0);
  EXPECT_TRUE(throws_with_message<SubmitError>([&] { submit_job(*store_, state_, submission(dir_ / "scans")); },
                                               {"pipe", "not a regular file"}));
}

// The drop folder.
class InboxTest : public SubmitTest {
 protected:
  fs::path drop(const std::string& user, const std::string& name, bool ready) {
    const fs::path folder = state_.inbox() / user / name;
    write(folder / "p1.png", "page 1 of " + name);
    write(folder / "p2.png", "page 2 of " + name);
    if (ready) write(folder / "READY", "");
    return folder;
  }
};

TEST_F(InboxTest, AFolderIsTakenOnlyOnceItIsReady) {
  const fs::path half = drop("ana", "tuesday", false);
  InboxScan scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_TRUE(scan.submitted.empty());
  EXPECT_TRUE(fs::exists(half)) << "a folder still being written was taken";

  write(half / "READY", "");
  scan = scan_inbox(*store_, state_, state_.inbox());
  ASSERT_EQ(scan.submitted.size(), 1u);
  const auto job = store_->job(scan.submitted[0]);
  EXPECT_EQ(job->name, "tuesday");
  EXPECT_EQ(job->owner_name, "ana");
  EXPECT_FALSE(fs::exists(half));
  EXPECT_TRUE(fs::exists(state_.inbox() / ".taken" / "ana" / "tuesday" / "p1.png"));
  EXPECT_EQ(tree(job->input_dir), (std::vector<std::string>{"p1.png", "p2.png"}));  // READY is not a page
  EXPECT_EQ(read(job->input_dir / "p2.png"), "page 2 of tuesday");

  // Later scans (a restart) do not take it again.
  EXPECT_TRUE(scan_inbox(*store_, state_, state_.inbox()).submitted.empty());
  EXPECT_TRUE(scan_inbox(*store_, state_, state_.inbox()).submitted.empty());
  EXPECT_EQ(store_->jobs().size(), 1u);
}

TEST_F(InboxTest, TheSameNameTwiceMakesTwoJobs) {
  drop("ana", "night", true);
  ASSERT_EQ(scan_inbox(*store_, state_, state_.inbox()).submitted.size(), 1u);
  drop("ana", "night", true);
  ASSERT_EQ(scan_inbox(*store_, state_, state_.inbox()).submitted.size(), 1u);
  EXPECT_EQ(store_->jobs().size(), 2u);
  EXPECT_TRUE(fs::exists(state_.inbox() / ".taken" / "ana" / "night-2"));
}

TEST_F(InboxTest, ACrashBetweenTheMoveAndTheQueueIsRecoveredOnce) {
  // Moved aside, but the scanner died before queueing it.
  drop("ana", "crashed", true);
  fs::create_directories(state_.inbox() / ".taken" / "ana");
  fs::rename(state_.inbox() / "ana" / "crashed", state_.inbox() / ".taken" / "ana" / "crashed");
  InboxScan scan = scan_inbox(*store_, state_, state_.inbox());
  ASSERT_EQ(scan.submitted.size(), 1u);
  EXPECT_EQ(store_->job(scan.submitted[0])->name, "crashed");

  // Queued, but the scanner died before marking it: not queued a second time.
  fs::remove(state_.inbox() / ".taken" / "ana" / "crashed" / ".queued");
  scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_TRUE(scan.submitted.empty());
  EXPECT_TRUE(scan.problems.empty());
  EXPECT_EQ(store_->jobs().size(), 1u);
}

TEST_F(InboxTest, AFoldersTemplateYamlIsItsJobsTemplate) {
  const std::string yaml = "name: deposit slip\nfields:\n  - name: amount\n    zone: [0.5, 0.1, 0.4, 0.2]\n    rule: amount\n";
  const fs::path folder = drop("ana", "slips", false);
  write(folder / "template.yaml", yaml);
  write(folder / "READY", "");
  InboxScan scan = scan_inbox(*store_, state_, state_.inbox());
  ASSERT_EQ(scan.submitted.size(), 1u) << (scan.problems.empty() ? "" : scan.problems[0]);
  const auto job = store_->job(scan.submitted[0]);
  ASSERT_FALSE(job->template_path.empty());
  EXPECT_EQ(read(job->template_path), yaml);
  EXPECT_EQ(tree(job->input_dir), (std::vector<std::string>{"p1.png", "p2.png"}));  // the template is no page

  // A broken one: the folder is not queued, and the problem names the file and its line.
  const fs::path broken = drop("ana", "broken", false);
  write(broken / "template.yaml", "name: x\nfields:\n  - name: a\n    zone: [0.5, 0.5, 0.9, 0.2]\n");
  write(broken / "READY", "");
  scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_TRUE(scan.submitted.empty());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("template.yaml:4"), std::string::npos) << scan.problems[0];
  EXPECT_EQ(store_->jobs().size(), 1u);
  // Mended where the folder now lies, it is queued at the next scan.
  write(state_.inbox() / ".taken" / "ana" / "broken" / "template.yaml", yaml);
  scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_EQ(scan.submitted.size(), 1u);
  EXPECT_TRUE(scan.problems.empty());

  // A template.yaml that is a link is no template; one leading out of the folder is refused.
  write(dir_ / "outside.yaml", yaml);
  const fs::path linked = drop("ana", "linked", false);
  fs::create_symlink(dir_ / "outside.yaml", linked / "template.yaml");
  write(linked / "READY", "");
  scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_TRUE(scan.submitted.empty());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("outside"), std::string::npos) << scan.problems[0];
}

TEST_F(InboxTest, AnUnknownUsersFolderIsLeftWithAReason) {
  const fs::path folder = drop("mallory", "night", true);
  const InboxScan scan = scan_inbox(*store_, state_, state_.inbox());
  EXPECT_TRUE(scan.submitted.empty());
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_NE(scan.problems[0].find("no user named 'mallory'"), std::string::npos) << scan.problems[0];
  EXPECT_TRUE(fs::exists(folder));
}

TEST_F(InboxTest, AMissingInboxIsNothingToDo) {
  const InboxScan scan = scan_inbox(*store_, state_, dir_ / "no-inbox");
  EXPECT_TRUE(scan.submitted.empty());
  EXPECT_TRUE(scan.problems.empty());
}

}  // namespace
}  // namespace digitflow::jobs
