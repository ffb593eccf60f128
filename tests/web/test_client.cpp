// digitflow submit --server (the fixture starts the server): a folder uploaded through the API client becomes a job of the
// token's user with the same files; a bad token, a dead server and a link that leads out of
// the folder are named.
#include <fstream>

#include "digitflow/jobs/submit.hpp"
#include "digitflow/web/client.hpp"
#include "web_fixture.hpp"

namespace digitflow::web::testing {
namespace {

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

class ClientTest : public WebTest {
 protected:
  RemoteSubmission submission(const std::string& token) {
    RemoteSubmission r;
    r.server = "http://127.0.0.1:" + std::to_string(port_);
    r.token = token;
    r.folder = dir_ / "scans";
    return r;
  }
};

TEST_F(ClientTest, AFolderBecomesAJobOfTheTokensUser) {
  register_user("ana");
  const std::string token = api_token("ana");
  write(dir_ / "scans" / "a.png", "not really a page");
  write(dir_ / "scans" / "sub" / "b.png", "nor this one");
  RemoteSubmission r = submission(token);
  r.name = "remote night";
  const int64_t id = submit_remote(r);
  auto answer = get("/api/v1/jobs/" + std::to_string(id), bearer(token));
  ASSERT_EQ(answer->status, 200) << answer->body;
  const json job = json::parse(answer->body);
  EXPECT_EQ(job["name"], "remote night");
  EXPECT_EQ(job["owner"], "ana");
}

TEST_F(ClientTest, AFolderSendsItsOwnTemplateWithItsPages) {
  register_user("ana");
  const std::string token = api_token("ana");
  write(dir_ / "scans" / "a.png", "page");
  write(dir_ / "scans" / "form.yaml",
        "name: our slip\nfields:\n  - name: amount\n    zone: [0.1, 0.1, 0.5, 0.5]\n    rule: amount\n");
  RemoteSubmission r = submission(token);
  r.template_file = dir_ / "scans" / "." / "form.yaml";
  const int64_t id = submit_remote(r);
  const json job = json::parse(get("/api/v1/jobs/" + std::to_string(id), bearer(token))->body);
  EXPECT_EQ(job["template"], "our slip");

  // Named as it lies in the folder.
  r.template_file = "form.yaml";
  EXPECT_EQ(json::parse(get("/api/v1/jobs/" + std::to_string(submit_remote(r)), bearer(token))->body)["template"],
            "our slip");

  write(dir_ / "elsewhere.yaml", "name: x\nfields: []\n");
  r.template_file = dir_ / "elsewhere.yaml";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); },
                                                                   {"elsewhere.yaml", "must lie inside"}));
  r.template_file = dir_ / "scans" / "missing.yaml";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); },
                                                                   {"missing.yaml", "no such template file"}));
  r.template_file = dir_ / "scans" / "form.yaml";
  r.template_name = "check";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"not both"}));
  // A file of the folder that is no template: the server names its problem.
  write(dir_ / "scans" / "notes.yaml", "just: notes\n");
  r.template_name.clear();
  r.template_file = dir_ / "scans" / "notes.yaml";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"400", "notes.yaml"}));
}

TEST_F(ClientTest, RefusalsAreNamed) {
  register_user("ana");
  write(dir_ / "scans" / "a.png", "page");
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(submission("wrong-token")); },
                                                                   {"401"}));
  RemoteSubmission r = submission(api_token("ana"));
  r.template_name = "no-such-template";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"no-such-template"}));
  r = submission("t");
  r.server = "ftp://127.0.0.1";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"expects http://"}));
  r = submission("t");
  r.folder = dir_ / "nothing-here";
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"no such folder"}));
  write(dir_ / "secret.txt", "private");
  fs::create_symlink(dir_ / "secret.txt", dir_ / "scans" / "leak.png");
  EXPECT_TRUE(digitflow::testing::throws_with_message<jobs::SubmitError>([&] { submit_remote(submission("t")); },
                                                                         {"leak.png", "outside"}));
  fs::remove(dir_ / "scans" / "leak.png");
  const int port = port_;
  stop();
  r = submission("t");
  r.server = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(digitflow::testing::throws_with_message<ClientError>([&] { submit_remote(r); }, {"127.0.0.1"}));
}

}  // namespace
}  // namespace digitflow::web::testing
