// What the routes do, without HTTP: each call takes the caller and plain values and answers
// JSON (or bytes), throwing HttpError subclasses for what the client got wrong. A job is
// visible to its owner and to admins; to anyone else it does not exist (NotFound).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <set>
#include <string>
#include <thread>

#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/web/accounts.hpp"
#include "digitflow/web/server.hpp"
#include "digitflow/web/store_pool.hpp"
#include "digitflow/web/uploads.hpp"

namespace digitflow::web {

nlohmann::json to_json(const jobs::User& user);
nlohmann::json to_json(const jobs::Job& job);

class Service {
 public:
  explicit Service(const ServerOptions& options);

  StorePool& stores() { return stores_; }
  Accounts& accounts() { return *accounts_; }
  const ServerOptions& options() const { return options_; }
  const UploadLimits& upload_limits() const { return limits_; }
  std::filesystem::path uploads_dir() const { return options_.state.root / "uploads"; }

  nlohmann::json templates() const;
  // Queues the uploaded folder as a job of the caller. Its template is template_name, one
  // of templates(), or template_file, the path of a template YAML inside the upload (a job
  // folder that brings its own); "" for none, and not both. Returns the job id.
  int64_t submit(const Caller& caller, const UploadFolder& upload, const std::string& name,
                 const std::string& template_name, const std::string& template_file = "");
  nlohmann::json jobs(const Caller& caller, bool mine_only);
  jobs::Job job(const Caller& caller, int64_t id);  // NotFound for another user's job
  nlohmann::json cancel(const Caller& caller, int64_t id);
  // The job's stored pages as results.jsonl or results.csv, page order.
  std::string results(const Caller& caller, int64_t id, const std::string& format);
  nlohmann::json pages(const Caller& caller, int64_t id, int64_t from, int64_t limit,
                       const std::string& filter);
  std::string overlay_png(const Caller& caller, int64_t id, const std::string& page_key);
  std::string crop_png(const Caller& caller, int64_t id, const std::string& page_key,
                       const std::string& box);

  // Reads an encoded image: its strings, or with `one_digit` the whole image as one digit.
  // `drawn`: ink with no form (the pad), so no straight stroke is taken for a form line.
  nlohmann::json recognize(std::span<const uint8_t> image, bool one_digit, bool drawn = false);

  nlohmann::json review_queue(const Caller& caller, int64_t limit);
  nlohmann::json add_sample(const Caller& caller, const nlohmann::json& body);
  nlohmann::json model();

  nlohmann::json users(const Caller& admin);

  // Admin: starts fine-tuning the default model on the reviewed samples in the background
  // (jobs/retrain.hpp); answers the version recorded. Taken while one is running.
  nlohmann::json retrain(const Caller& admin);
  // Waits for a retraining in progress (cancelled first) to end.
  void stop_retrain();
  ~Service();

 private:
  // The store's default model (a promoted retrained version) or the configured one, loaded
  // when it changed since the last call. Call with model_mutex_ held.
  void refresh_model(jobs::JobStore& store);

  std::optional<jobs::PageRecord> find_page(jobs::JobStore& store, int64_t job,
                                            const std::string& key);
  cv::Mat decode_stored_page(const jobs::Job& job, const pipeline::PageResult& page);

  ServerOptions options_;
  StorePool stores_;
  PasswordPolicy passwords_;
  std::unique_ptr<Accounts> accounts_;
  UploadLimits limits_;
  std::mutex model_mutex_;  // kernels::Network is not thread-safe: one recognition at a time
  std::filesystem::path model_path_;
  kernels::LoadedModel model_;
  // The screen and the partner of options_.worker, loaded on first use: they read beside
  // model_ only while it is the configured model.default, as in the job workers.
  std::optional<kernels::LoadedModel> screen_, partner_;
  // What reads for recognize, kept between calls with their int8 primitives
  // (options_.run.int8, as the job workers read); remade when model_ changes. Strings: the
  // screen, model_ and the partner; one digit: model_ and the partner.
  std::unique_ptr<kernels::Inference> page_reader_, digit_reader_;
  nlohmann::json page_models_, digit_models_;  // the files each reads with, model first
  std::set<std::string> int8_logged_;           // why they read in fp32 (with the model), each logged once
  std::mutex retrain_mutex_;
  std::thread retrain_thread_;
  std::atomic<bool> retraining_{false}, cancel_retrain_{false};
};

}  // namespace digitflow::web
