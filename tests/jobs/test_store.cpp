// The behaviour every job store must have, run against SQLite and against a real
// PostgreSQL server started by the tests: users, jobs, the claim/lease/heartbeat cycle,
// pages stored once, cancellation, workers racing for one queue, the web service's
// sessions, API tokens, reviewed digits and model versions, and migrating an older schema.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "digitflow/jobs/store.hpp"
#include "postgres_server.hpp"
#include "schema.hpp"
#include "test_support.hpp"

namespace digitflow::jobs {
namespace {

using digitflow::testing::TempDir;
using digitflow::testing::throws_with_message;

// A fresh, empty store of one kind, and the location to open more connections to it.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite")
      location_ = (dir_ / "jobs.db").string();
    else
      location_ = digitflow::testing::PostgresServer::instance().fresh_database();
    store_ = open_store(location_);
  }

  int64_t user(const std::string& name, const std::string& role = "user") {
    User u;
    u.name = name;
    u.email = name + "@example.org";
    u.role = role;
    return store_->add_user(u);
  }
  int64_t job(int64_t owner, const std::string& name, const std::string& source = {}) {
    NewJob j;
    j.owner = owner;
    j.name = name;
    j.input_dir = "/state/inputs/" + name;
    j.source = source;
    return store_->create_job(j);
  }
  static PageRecord page(int64_t seq, bool failed = false, int64_t strings = 2) {
    PageRecord p;
    p.seq = seq;
    p.key = "p" + std::to_string(seq) + ".png#0";
    p.failed = failed;
    p.strings = strings;
    p.low_confidence = 1;
    p.result_json = R"({"page":"p)" + std::to_string(seq) + R"(.png"})";
    return p;
  }

  static Sample sample(int64_t user, int64_t job, const std::string& page_key, int string_index, int digit_index,
                       int label, int64_t created_ms = 0) {
    Sample s;
    s.user = user;
    s.job = job;
    s.page_key = page_key;
    s.string_index = string_index;
    s.digit_index = digit_index;
    s.guess = 7;
    s.confidence = 0.625;
    s.label = label;
    s.image = "samples/" + page_key + ".png";
    s.created_ms = created_ms;
    return s;
  }
  static ModelVersion model(const std::string& path, const std::string& status, bool is_default = false) {
    ModelVersion v;
    v.path = path;
    v.status = status;
    v.is_default = is_default;
    return v;
  }

  TempDir dir_;
  std::string location_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(StoreTest, FreshStoreIsAtTheCurrentSchemaAndReopens) {
  EXPECT_EQ(store_->schema_version(), kSchemaVersion);
  const int64_t id = user("ana");
  store_.reset();
  auto again = open_store(location_);
  EXPECT_EQ(again->schema_version(), kSchemaVersion);
  ASSERT_TRUE(again->user_by_id(id));
  EXPECT_EQ(again->user_by_id(id)->name, "ana");
}

TEST_P(StoreTest, UsersAreAddedFoundUpdatedAndUnique) {
  const int64_t ana = user("ana", "admin");
  const int64_t bo = user("bo");
  EXPECT_NE(ana, bo);
  auto found = store_->user_by_name("ana");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, ana);
  EXPECT_EQ(found->email, "ana@example.org");
  EXPECT_EQ(found->role, "admin");
  EXPECT_FALSE(found->disabled);
  EXPECT_GT(found->created_ms, 0);
  EXPECT_FALSE(store_->user_by_name("nobody"));
  EXPECT_FALSE(store_->user_by_id(9999));

  EXPECT_TRUE(digitflow::testing::throws_with_message<Conflict>([&] { user("ana"); }, {"ana", "already exists"}));

  found->disabled = true;
  found->role = "user";
  found->password_hash = "$argon2id$x";
  EXPECT_TRUE(store_->update_user(*found));
  auto changed = store_->user_by_id(ana);
  EXPECT_TRUE(changed->disabled);
  EXPECT_EQ(changed->role, "user");
  EXPECT_EQ(changed->password_hash, "$argon2id$x");
  User ghost;
  ghost.id = 12345;
  EXPECT_FALSE(store_->update_user(ghost));

  const auto all = store_->users();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "ana");
  EXPECT_EQ(all[1].name, "bo");
}

TEST_P(StoreTest, AnUnknownRoleIsRefused) {
  User u;
  u.name = "eve";
  u.role = "root";
  EXPECT_THROW(store_->add_user(u), StoreError);
}

TEST_P(StoreTest, JobsAreCreatedQueuedAndListedPerOwnerNewestFirst) {
  const int64_t ana = user("ana"), bo = user("bo");
  const int64_t a1 = job(ana, "monday"), b1 = job(bo, "tuesday"), a2 = job(ana, "wednesday");
  auto j = store_->job(a1);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->state, JobState::queued);
  EXPECT_EQ(j->owner, ana);
  EXPECT_EQ(j->owner_name, "ana");
  EXPECT_EQ(j->name, "monday");
  EXPECT_EQ(j->input_dir, "/state/inputs/monday");
  EXPECT_EQ(j->pages_total, -1);
  EXPECT_EQ(j->pages_done, 0);
  EXPECT_GT(j->created_ms, 0);
  EXPECT_EQ(j->started_ms, 0);
  EXPECT_FALSE(store_->job(9999));

  const auto mine = store_->jobs(ana);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].id, a2);
  EXPECT_EQ(mine[1].id, a1);
  const auto all = store_->jobs();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].id, b1);
}

TEST_P(StoreTest, AJobNeedsAnExistingOwner) {
  EXPECT_TRUE(digitflow::testing::throws_with_message<StoreError>([&] { job(777, "orphan"); }, {"no user", "777"}));
}

TEST_P(StoreTest, ASourceIsSubmittedOnlyOnce) {
  const int64_t ana = user("ana");
  job(ana, "night-1", "inbox/ana/night-1");
  EXPECT_TRUE(digitflow::testing::throws_with_message<Conflict>([&] { job(ana, "again", "inbox/ana/night-1"); },
                                                                {"inbox/ana/night-1", "submitted before"}));
  job(ana, "no-source-1");
  job(ana, "no-source-2");  // empty sources do not collide
  EXPECT_EQ(store_->jobs(ana).size(), 3u);
}

TEST_P(StoreTest, ClaimTakesTheOldestQueuedJobOnce) {
  const int64_t ana = user("ana");
  const int64_t first = job(ana, "first"), second = job(ana, "second");
  auto a = store_->claim_job("w1", 60'000);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, first);
  EXPECT_EQ(a->state, JobState::running);
  EXPECT_EQ(a->worker, "w1");
  EXPECT_EQ(a->attempts, 1);
  EXPECT_GT(a->started_ms, 0);
  EXPECT_GT(a->lease_expires_ms, a->started_ms);
  auto b = store_->claim_job("w2", 60'000);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->id, second);
  EXPECT_FALSE(store_->claim_job("w3", 60'000));
}

TEST_P(StoreTest, AnExpiredLeaseIsClaimedAgainAndTheOldWorkerIsFencedOff) {
  const int64_t ana = user("ana");
  const int64_t id = job(ana, "night");
  ASSERT_TRUE(store_->claim_job("dead", 1));
  store_->set_pages_total(id, "dead", 3);
  EXPECT_TRUE(store_->put_page(id, "dead", page(0)));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  auto again = store_->claim_job("alive", 60'000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, id);
  EXPECT_EQ(again->worker, "alive");
  EXPECT_EQ(again->attempts, 2);
  EXPECT_EQ(again->pages_done, 1);
  EXPECT_EQ(again->pages_total, 3);

  // The worker that lost its lease can no longer write anything.
  EXPECT_FALSE(store_->heartbeat(id, "dead", 60'000).held);
  EXPECT_THROW(store_->put_page(id, "dead", page(1)), LeaseLost);
  EXPECT_THROW(store_->set_pages_total(id, "dead", 3), LeaseLost);
  EXPECT_THROW(store_->finish_job(id, "dead", JobState::done), LeaseLost);

  EXPECT_TRUE(store_->heartbeat(id, "alive", 60'000).held);
  EXPECT_FALSE(store_->put_page(id, "alive", page(0)));  // stored before: not twice
  EXPECT_TRUE(store_->put_page(id, "alive", page(1)));
  EXPECT_TRUE(store_->put_page(id, "alive", page(2, true, 0)));
  store_->finish_job(id, "alive", JobState::done);
  auto done = store_->job(id);
  EXPECT_EQ(done->state, JobState::done);
  EXPECT_EQ(done->pages_done, 3);
  EXPECT_EQ(done->pages_failed, 1);
  EXPECT_EQ(done->strings, 4);
  EXPECT_EQ(done->low_confidence, 3);
  EXPECT_GT(done->finished_ms, 0);
  EXPECT_FALSE(store_->claim_job("late", 60'000));  // a finished job is never claimed
}

TEST_P(StoreTest, HeartbeatExtendsTheLease) {
  const int64_t id = job(user("ana"), "night");
  auto claimed = store_->claim_job("w1", 300);
  ASSERT_TRUE(claimed);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(store_->heartbeat(id, "w1", 300).held);
  }
  EXPECT_FALSE(store_->claim_job("w2", 300));  // 500 ms after a 300 ms lease, still held
  EXPECT_GT(store_->job(id)->lease_expires_ms, claimed->lease_expires_ms);
}

TEST_P(StoreTest, PagesComeBackInPageOrderAndInSlices) {
  const int64_t id = job(user("ana"), "night");
  ASSERT_TRUE(store_->claim_job("w", 60'000));
  for (int64_t seq : {3, 0, 2, 1, 4}) EXPECT_TRUE(store_->put_page(id, "w", page(seq)));
  const auto all = store_->pages(id);
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq, static_cast<int64_t>(i));
    EXPECT_EQ(all[i].key, page(static_cast<int64_t>(i)).key);
    EXPECT_EQ(all[i].result_json, page(static_cast<int64_t>(i)).result_json);
  }
  const auto slice = store_->pages(id, 2, 2);
  ASSERT_EQ(slice.size(), 2u);
  EXPECT_EQ(slice[0].seq, 2);
  EXPECT_EQ(slice[1].seq, 3);
  EXPECT_EQ(store_->page_keys(id).size(), 5u);
  EXPECT_TRUE(store_->pages(id + 1).empty());
}

TEST_P(StoreTest, CancellingAQueuedJobIsImmediate) {
  const int64_t id = job(user("ana"), "night");
  EXPECT_EQ(store_->cancel_job(id), JobState::cancelled);
  EXPECT_GT(store_->job(id)->finished_ms, 0);
  EXPECT_FALSE(store_->claim_job("w", 60'000));
  EXPECT_FALSE(store_->cancel_job(4242));
  EXPECT_EQ(store_->cancel_job(id), JobState::cancelled);  // twice is harmless
}

TEST_P(StoreTest, CancellingARunningJobReachesItsWorkerAtTheNextHeartbeat) {
  const int64_t id = job(user("ana"), "night");
  ASSERT_TRUE(store_->claim_job("w", 60'000));
  EXPECT_FALSE(store_->heartbeat(id, "w", 60'000).cancel_requested);
  EXPECT_EQ(store_->cancel_job(id), JobState::running);
  const Lease lease = store_->heartbeat(id, "w", 60'000);
  EXPECT_TRUE(lease.held);
  EXPECT_TRUE(lease.cancel_requested);
  store_->finish_job(id, "w", JobState::cancelled);
  EXPECT_EQ(store_->job(id)->state, JobState::cancelled);
}

TEST_P(StoreTest, ACancelledJobWhoseWorkerDiedIsNotRunAgain) {
  const int64_t id = job(user("ana"), "night");
  ASSERT_TRUE(store_->claim_job("dead", 1));
  store_->cancel_job(id);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(store_->claim_job("w", 60'000));
  EXPECT_EQ(store_->job(id)->state, JobState::cancelled);
}

TEST_P(StoreTest, AReleasedJobGoesBackToTheQueue) {
  const int64_t id = job(user("ana"), "night");
  ASSERT_TRUE(store_->claim_job("w1", 60'000));
  store_->release_job(id, "w1");
  EXPECT_EQ(store_->job(id)->state, JobState::queued);
  auto again = store_->claim_job("w2", 60'000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, id);
  store_->release_job(id, "w1");  // not the holder: nothing happens
  EXPECT_EQ(store_->job(id)->state, JobState::running);
}

TEST_P(StoreTest, FailedJobsKeepTheirReasonAndFinishNeedsAFinalState) {
  const int64_t id = job(user("ana"), "night");
  ASSERT_TRUE(store_->claim_job("w", 60'000));
  EXPECT_THROW(store_->finish_job(id, "w", JobState::queued), StoreError);
  store_->finish_job(id, "w", JobState::failed, "model file missing");
  auto j = store_->job(id);
  EXPECT_EQ(j->state, JobState::failed);
  EXPECT_EQ(j->error, "model file missing");
}

// Workers in their own connections race for 20 jobs: each job is claimed exactly once.
TEST_P(StoreTest, RacingWorkersClaimEachJobExactlyOnce) {
  const int64_t ana = user("ana");
  constexpr int kJobs = 20, kWorkers = 4;
  for (int i = 0; i < kJobs; ++i) job(ana, "job-" + std::to_string(i));
  std::mutex mutex;
  std::map<int64_t, std::vector<std::string>> claimed;
  std::vector<std::thread> workers;
  std::atomic<int> errors{0};
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      try {
        auto store = open_store(location_);
        const std::string name = "w" + std::to_string(w);
        while (true) {
          std::optional<Job> j;
          try {
            j = store->claim_job(name, 60'000);
          } catch (const TransientError&) {
            continue;
          }
          if (!j) break;
          {
            std::lock_guard lock(mutex);
            claimed[j->id].push_back(name);
          }
          store->finish_job(j->id, name, JobState::done);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++errors;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(errors, 0);
  ASSERT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, by] : claimed) EXPECT_EQ(by.size(), 1u) << "job " << id;
  for (const Job& j : store_->jobs()) EXPECT_EQ(j.state, JobState::done);
}

TEST_P(StoreTest, AnUnknownStateNameIsAnError) {
  EXPECT_THROW(parse_job_state("paused"), StoreError);
  for (JobState s : {JobState::queued, JobState::running, JobState::done, JobState::failed, JobState::cancelled})
    EXPECT_EQ(parse_job_state(to_string(s)), s);
}

TEST_P(StoreTest, SessionsAreAddedFoundAndDeleted) {
  const int64_t ana = user("ana"), bo = user("bo");
  Session s;
  s.token_hash = "hash-a1";
  s.user = ana;
  s.csrf = "csrf-a1";
  s.expires_ms = now_ms() + 3'600'000;
  store_->add_session(s);
  for (const char* hash : {"hash-a2", "hash-b1"}) {
    Session other = s;
    other.token_hash = hash;
    other.user = std::string(hash) == "hash-b1" ? bo : ana;
    store_->add_session(other);
  }
  auto found = store_->session("hash-a1");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->user, ana);
  EXPECT_EQ(found->csrf, "csrf-a1");
  EXPECT_GT(found->created_ms, 0);
  EXPECT_EQ(found->expires_ms, s.expires_ms);
  EXPECT_FALSE(store_->session("no-such-hash"));
  EXPECT_THROW(store_->add_session(s), Conflict);

  store_->delete_session("hash-a1");
  EXPECT_FALSE(store_->session("hash-a1"));
  EXPECT_TRUE(store_->session("hash-a2"));
  store_->delete_session("hash-a1");  // twice is harmless

  store_->delete_sessions(ana);
  EXPECT_FALSE(store_->session("hash-a2"));
  EXPECT_TRUE(store_->session("hash-b1"));  // another user's stays

  Session orphan = s;
  orphan.token_hash = "hash-x";
  orphan.user = 777;
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->add_session(orphan); }, {"no user", "777"}));
}

TEST_P(StoreTest, ApiTokensAreFoundMarkedUsedListedAndRevokedOnlyByTheirOwner) {
  const int64_t ana = user("ana"), bo = user("bo");
  ApiToken t;
  t.user = ana;
  t.name = "laptop";
  t.token_hash = "tok-1";
  const int64_t first = store_->add_api_token(t);
  t.name = "scanner";
  t.token_hash = "tok-2";
  const int64_t second = store_->add_api_token(t);
  t.user = bo;
  t.name = "bo's";
  t.token_hash = "tok-3";
  const int64_t bos = store_->add_api_token(t);
  EXPECT_NE(first, second);

  const auto listed = store_->api_tokens(ana);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].id, first);
  EXPECT_EQ(listed[0].name, "laptop");
  EXPECT_EQ(listed[0].token_hash, "tok-1");
  EXPECT_GT(listed[0].created_ms, 0);
  EXPECT_EQ(listed[0].last_used_ms, 0);  // never used yet
  EXPECT_EQ(listed[1].id, second);
  EXPECT_EQ(store_->api_tokens(bo).size(), 1u);

  const int64_t before = now_ms();
  auto used = store_->api_token("tok-1");
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, first);
  EXPECT_EQ(used->user, ana);
  EXPECT_GE(used->last_used_ms, before - 1000);  // PostgreSQL stamps with the server's clock
  EXPECT_EQ(store_->api_tokens(ana)[0].last_used_ms, used->last_used_ms);
  EXPECT_FALSE(store_->api_token("no-such-token"));

  t.user = ana;
  t.token_hash = "tok-1";
  EXPECT_THROW(store_->add_api_token(t), Conflict);
  t.user = 777;
  t.token_hash = "tok-9";
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->add_api_token(t); }, {"no user", "777"}));

  EXPECT_FALSE(store_->revoke_api_token(ana, bos));  // not hers
  EXPECT_TRUE(store_->api_token("tok-3"));
  EXPECT_TRUE(store_->revoke_api_token(ana, first));
  EXPECT_FALSE(store_->revoke_api_token(ana, first));  // already gone
  EXPECT_FALSE(store_->api_token("tok-1"));
  ASSERT_EQ(store_->api_tokens(ana).size(), 1u);
  EXPECT_EQ(store_->api_tokens(ana)[0].id, second);
}

TEST_P(StoreTest, SamplesAreUpsertedPerDigitAndListedNewestFirst) {
  const int64_t ana = user("ana"), bo = user("bo");
  const int64_t monday = job(ana, "monday"), tuesday = job(ana, "tuesday");
  const int64_t a = store_->put_sample(sample(ana, monday, "a.png#0", 0, 0, 3, 1000));
  const int64_t b = store_->put_sample(sample(ana, monday, "a.png#0", 0, 1, 4, 2000));
  const int64_t c = store_->put_sample(sample(bo, monday, "dir/b.png#1", 2, 0, 10, 3000));
  const int64_t d = store_->put_sample(sample(ana, tuesday, "a.png#0", 0, 0, 9, 4000));
  EXPECT_EQ(std::set<int64_t>({a, b, c, d}).size(), 4u);

  auto all = store_->samples();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].id, d);
  EXPECT_EQ(all[3].id, a);
  EXPECT_EQ(all[3].user, ana);
  EXPECT_EQ(all[3].job, monday);
  EXPECT_EQ(all[3].page_key, "a.png#0");
  EXPECT_EQ(all[3].string_index, 0);
  EXPECT_EQ(all[3].digit_index, 0);
  EXPECT_EQ(all[3].guess, 7);
  EXPECT_DOUBLE_EQ(all[3].confidence, 0.625);
  EXPECT_EQ(all[3].label, 3);
  EXPECT_EQ(all[3].image, "samples/a.png#0.png");
  EXPECT_EQ(all[3].created_ms, 1000);

  // Reviewed again (by someone else): the same sample, replaced, and now the newest.
  Sample again = sample(bo, monday, "a.png#0", 0, 0, 8, 5000);
  again.confidence = 0.25;
  EXPECT_EQ(store_->put_sample(again), a);
  all = store_->samples();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_EQ(all[0].label, 8);
  EXPECT_EQ(all[0].user, bo);
  EXPECT_DOUBLE_EQ(all[0].confidence, 0.25);

  const auto anas = store_->samples(ana);
  ASSERT_EQ(anas.size(), 2u);
  EXPECT_EQ(anas[0].id, d);
  EXPECT_EQ(anas[1].id, b);
  const auto newest = store_->samples(0, 2);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, a);
  EXPECT_EQ(newest[1].id, d);
  EXPECT_EQ(store_->samples(bo, 1).size(), 1u);
  EXPECT_GT(store_->put_sample(sample(ana, tuesday, "c.png#0", 1, 1, 0)), 0);
  EXPECT_GT(store_->samples(ana, 1)[0].created_ms, 0);  // stamped when not given

  EXPECT_EQ(store_->reviewed_digits(monday),
            (std::vector<std::string>{"a.png#0/0/0", "a.png#0/0/1", "dir/b.png#1/2/0"}));
  EXPECT_EQ(store_->reviewed_digits(tuesday), (std::vector<std::string>{"a.png#0/0/0", "c.png#0/1/1"}));
  EXPECT_TRUE(store_->reviewed_digits(9999).empty());
}

TEST_P(StoreTest, ASampleNeedsALabelInRangeAndAnExistingUserAndJob) {
  const int64_t ana = user("ana");
  const int64_t id = job(ana, "monday");
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->put_sample(sample(ana, id, "a#0", 0, 0, 11)); },
                                              {"label 11", "out of range"}));
  EXPECT_THROW(store_->put_sample(sample(ana, id, "a#0", 0, 0, -1)), StoreError);
  EXPECT_THROW(store_->put_sample(sample(ana, id, "a#0", -1, 0, 1)), StoreError);
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->put_sample(sample(777, id, "a#0", 0, 0, 1)); },
                                              {"no user with id 777"}));
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->put_sample(sample(ana, 888, "a#0", 0, 0, 1)); },
                                              {"no job with id 888"}));
  EXPECT_TRUE(store_->samples().empty());
  store_->put_sample(sample(ana, id, "a#0", 0, 0, 10));  // 10: not a digit
  EXPECT_EQ(store_->samples().size(), 1u);
}

// A version in training is held while its trainer renews the hold; once the hold lapses
// it is recorded failed with the note given, and only it: other versions stay as they are.
TEST_P(StoreTest, AVersionWhoseTrainerStoppedHoldingItIsRecordedFailed) {
  const int64_t ready = store_->add_model_version(model("models/ready.bin", "ready", true));
  const int64_t held = store_->add_model_version(model("models/held.bin", "training"));
  const int64_t lapsed = store_->add_model_version(model("models/lapsed.bin", "training"));
  EXPECT_EQ(store_->fail_abandoned_model_versions("gone"), 0) << "a new version is held";
  EXPECT_TRUE(store_->hold_model_version(held, 60000));
  EXPECT_TRUE(store_->hold_model_version(lapsed, 0));
  EXPECT_FALSE(store_->hold_model_version(ready, 60000)) << "only a version in training is held";
  EXPECT_FALSE(store_->hold_model_version(999, 60000));
  EXPECT_EQ(store_->fail_abandoned_model_versions("its trainer stopped"), 1);
  EXPECT_EQ(store_->fail_abandoned_model_versions("again"), 0);
  const std::vector<ModelVersion> versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[0].status, "ready");
  EXPECT_TRUE(versions[0].is_default);
  EXPECT_EQ(versions[1].status, "training");
  EXPECT_EQ(versions[2].status, "failed");
  EXPECT_EQ(versions[2].note, "its trainer stopped");
  EXPECT_FALSE(store_->hold_model_version(lapsed, 60000));
}

TEST_P(StoreTest, ModelVersionsHaveExactlyOneDefault) {
  ModelVersion shipped = model("models/default.bin", "ready", true);
  shipped.note = "shipped";
  const int64_t first = store_->add_model_version(shipped);
  const int64_t second = store_->add_model_version(model("models/retrain-1.bin", "training"));
  auto versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].id, first);
  EXPECT_EQ(versions[0].path, "models/default.bin");
  EXPECT_TRUE(versions[0].is_default);
  EXPECT_EQ(versions[0].note, "shipped");
  EXPECT_EQ(versions[0].metrics_json, "{}");
  EXPECT_GT(versions[0].created_ms, 0);
  EXPECT_EQ(versions[1].id, second);
  EXPECT_EQ(versions[1].status, "training");
  EXPECT_FALSE(versions[1].is_default);

  ModelVersion trained = versions[1];
  trained.status = "ready";
  trained.note = "better on the reviewed digits";
  trained.metrics_json = R"({"accuracy":0.993})";
  trained.is_default = true;
  EXPECT_TRUE(store_->update_model_version(trained));
  versions = store_->model_versions();
  EXPECT_FALSE(versions[0].is_default);
  EXPECT_TRUE(versions[1].is_default);
  EXPECT_EQ(versions[1].status, "ready");
  EXPECT_EQ(versions[1].note, "better on the reviewed digits");
  EXPECT_EQ(versions[1].metrics_json, R"({"accuracy":0.993})");
  EXPECT_EQ(versions[1].path, "models/retrain-1.bin");

  // Without is_default, an update leaves the flag alone; a new default replaces the old.
  trained.is_default = false;
  trained.note = "still the best";
  EXPECT_TRUE(store_->update_model_version(trained));
  EXPECT_TRUE(store_->model_versions()[1].is_default);
  const int64_t third = store_->add_model_version(model("models/retrain-2.bin", "ready", true));
  versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(std::count_if(versions.begin(), versions.end(), [](const ModelVersion& v) { return v.is_default; }), 1);
  EXPECT_TRUE(versions[2].is_default);
  EXPECT_EQ(versions[2].id, third);

  ModelVersion ghost = model("x", "ready", true);
  ghost.id = 4242;
  EXPECT_FALSE(store_->update_model_version(ghost));
  versions = store_->model_versions();
  EXPECT_TRUE(versions[2].is_default);  // an unknown id changes nothing
  EXPECT_TRUE(throws_with_message<StoreError>([&] { store_->add_model_version(model("y", "promoted")); },
                                              {"promoted"}));
}

// A database made by running `sql` (its schema as an older digitflow left it); its location.
std::string old_database(bool sqlite, const std::string& sql, const std::filesystem::path& dir) {
  if (!sqlite) {
    std::string location = digitflow::testing::PostgresServer::instance().fresh_database();
    digitflow::testing::PostgresServer::instance().psql(location.substr(location.rfind('/') + 1), sql);
    return location;
  }
  const std::string location = (dir / "old.db").string();
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(location.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return location;
}

// A database at schema 2 with a version in training (no hold recorded then) is migrated,
// and that version, whose trainer is long gone, is taken as abandoned.
TEST_P(StoreTest, ASchemaTwoVersionLeftInTrainingIsAbandonedAfterTheMigration) {
  store_.reset();
  const bool sqlite = GetParam() == "sqlite";
  const auto steps = detail::migrations({sqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY"});
  std::string sql = "CREATE TABLE schema_version (version INTEGER NOT NULL);";
  for (int v = 0; v < 2; ++v)
    for (const std::string& statement : steps[static_cast<size_t>(v)]) sql.append(statement).append(";");
  sql.append("INSERT INTO schema_version (version) VALUES (2);");
  sql.append("INSERT INTO model_versions (path, status, created_ms) VALUES ('m.bin', 'training', 1);");
  auto store = open_store(old_database(sqlite, sql, dir_.path()));
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  EXPECT_EQ(store->fail_abandoned_model_versions("gone"), 1);
  EXPECT_EQ(store->model_versions().at(0).status, "failed");
}

// A database a digitflow at schema 1 left behind is migrated at open, its data kept.
TEST_P(StoreTest, ASchemaOneDatabaseIsMigratedAtOpenWithItsData) {
  store_.reset();
  const bool sqlite = GetParam() == "sqlite";
  const auto first = detail::migrations({sqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY"})[0];
  std::string sql = "CREATE TABLE schema_version (version INTEGER NOT NULL);";
  for (const std::string& statement : first) sql.append(statement).append(";");
  sql.append("INSERT INTO schema_version (version) VALUES (1);");
  sql.append("INSERT INTO users (name, created_ms) VALUES ('ana', 1);");
  sql.append("INSERT INTO jobs (owner, name, state, input_dir, created_ms) VALUES (1, 'old', 'done', '/in/old', 2);");

  const std::string location = old_database(sqlite, sql, dir_.path());
  auto store = open_store(location);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  const auto users = store->users();
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].name, "ana");
  const auto jobs = store->jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].name, "old");
  EXPECT_EQ(jobs[0].state, JobState::done);
  EXPECT_EQ(jobs[0].owner_name, "ana");

  // The new tables are there and work against the old rows.
  Session s;
  s.token_hash = "h";
  s.user = users[0].id;
  s.expires_ms = 1;
  store->add_session(s);
  EXPECT_TRUE(store->session("h"));
  EXPECT_GT(store->put_sample(sample(users[0].id, jobs[0].id, "p#0", 0, 0, 5)), 0);
  EXPECT_EQ(store->reviewed_digits(jobs[0].id), std::vector<std::string>{"p#0/0/0"});
  EXPECT_GT(store->add_model_version(model("m.bin", "ready", true)), 0);

  // And a second open finds it current.
  store.reset();
  EXPECT_EQ(open_store(location)->schema_version(), kSchemaVersion);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

// SQLite specifics: the file is in WAL mode, and a newer schema is refused.
TEST(SqliteStore, ANewerSchemaIsRefusedWithAClearMessage) {
  TempDir dir;
  const auto file = dir / "jobs.db";
  open_sqlite_store(file).reset();
  // Pretend a later digitflow migrated the file.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_TRUE(digitflow::testing::throws_with_message<SchemaTooNew>(
      [&] { open_sqlite_store(file); }, {file.string(), "schema version 99", "newer digitflow"}));
}

TEST(SqliteStore, AFileThatIsNotADatabaseIsAnError) {
  TempDir dir;
  const auto file = dir / "notes.txt";
  {
    std::ofstream out(file);
    out << "these are my notes, not a database, and they are long enough to look like a header\n";
  }
  EXPECT_TRUE(digitflow::testing::throws_with_message<StoreError>([&] { open_sqlite_store(file); }, {file.string()}));
}

TEST(SqliteStore, OpenStoreChoosesByLocation) {
  TempDir dir;
  const auto file = dir / "sub" / "jobs.db";
  auto store = open_store("sqlite:" + file.string());
  EXPECT_EQ(store->describe(), "sqlite:" + file.string());
  EXPECT_TRUE(std::filesystem::exists(file));
  EXPECT_THROW(open_store(""), StoreError);
}

}  // namespace
}  // namespace digitflow::jobs
