#pragma once
// MAD's benchmark: for each task a baseline and one-at-a-time difficulty changes, 66 settings in
// all (mad-lab configs/tasks/*.yml). Names are "<task>:baseline" and "<task>:<param>=<value>".

#include "tasks/mad.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace deltabench::tasks {

// Which data MAD's benchmark settings stand for. kPublished: what mad-lab generated when the benchmark
// data and the published numbers were made (before its commit 35772e8, December 2024): selective
// copying's num_tokens_to_copy changes (32, 64, 96) were never passed to the generator, so they copied
// 16 tokens like the baseline (their params say pass_num_tokens_to_copy = false). kFixed: the settings
// as written, mad-lab after the fix.
enum class MadProtocol { kPublished, kFixed };
std::string_view mad_protocol_name(MadProtocol protocol);  // "published", "fixed"

struct MadSetting {
  std::string name;                           // "noisy-in-context-recall:frac_noise=0.4"
  MadTask task;
  std::map<std::string, std::string> params;  // the baseline's values with the change applied
};

const std::vector<MadSetting>& mad_settings(MadProtocol protocol = MadProtocol::kPublished);

// Throws TaskError listing a few known names when `name` is not one.
const MadSetting& find_mad_setting(std::string_view name, MadProtocol protocol = MadProtocol::kPublished);

}  // namespace deltabench::tasks
