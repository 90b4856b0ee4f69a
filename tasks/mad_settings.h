#pragma once
// MAD's benchmark: for each task a baseline and one-at-a-time difficulty changes, 66 settings in
// all (mad-lab configs/tasks/*.yml). Names are "<task>:baseline" and "<task>:<param>=<value>".

#include "tasks/mad.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace deltabench::tasks {

struct MadSetting {
  std::string name;                           // "noisy-in-context-recall:frac_noise=0.4"
  MadTask task;
  std::map<std::string, std::string> params;  // the baseline's values with the change applied
};

const std::vector<MadSetting>& mad_settings();

// Throws TaskError listing a few known names when `name` is not one.
const MadSetting& find_mad_setting(std::string_view name);

}  // namespace deltabench::tasks
