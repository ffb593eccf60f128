// One function per subcommand; each returns the process exit status.
#pragma once

namespace digitflow::cli {

int run_run(int argc, char** argv);
int run_merge(int argc, char** argv);
int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_calibrate(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_score(int argc, char** argv);
int run_synth(int argc, char** argv);
int run_submit(int argc, char** argv);
int run_jobs(int argc, char** argv);
int run_job(int argc, char** argv);
int run_cancel(int argc, char** argv);
int run_worker(int argc, char** argv);
int run_user(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_retrain(int argc, char** argv);

}  // namespace digitflow::cli
