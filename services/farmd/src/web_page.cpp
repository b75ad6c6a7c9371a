// farmd's live page (web_page.hpp): one mustache template, filled from a
// WebSnapshot. {{x}} is HTML-escaped by mustache; the template has no
// triple mustache ({{{x}}}) and no script.
#include "farmd/web_page.hpp"

#include <kainjow/mustache.hpp>
#include <stdexcept>

namespace farmd {

namespace {

using kainjow::mustache::data;
using kainjow::mustache::list;
using kainjow::mustache::mustache;
using kainjow::mustache::object;

constexpr const char* kTemplate = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{refresh}}">
<title>patch farm: {{farm}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { border-bottom: 1px solid #999; } .n { text-align: right; }
.healthy, .passed { color: #176317; } .quarantined, .failed, .error, .timed_out { color: #a11; }
.offline, .cancelled { color: #777; } .running { color: #1a4f9c; }
pre { background: #f4f4f4; padding: 6px; max-height: 16em; overflow: auto; margin: 4px 0; }
.empty { color: #777; }
</style>
</head>
<body>
<h1>patch farm <small>{{farm}}</small></h1>
<p id="summary">{{n_workers}} workers ({{n_healthy}} healthy), {{n_queue}} queued, page of {{now}} (refreshes every {{refresh}} s)</p>

<h2>Workers</h2>
{{#workers_any}}
<table id="workers">
<tr><th>worker</th><th>health</th><th>target</th><th>labels</th><th class="n">slots</th><th>running</th><th>last seen</th></tr>
{{#workers}}
<tr><td>{{name}}</td><td class="{{health}}">{{health}}</td><td>{{target}}</td><td>{{#labels}}{{.}} {{/labels}}</td><td class="n">{{slots}}</td><td>{{#jobs}}{{.}}<br>{{/jobs}}</td><td>{{seen}} ago</td></tr>
{{/workers}}
</table>
{{/workers_any}}
{{^workers_any}}<p class="empty" id="workers">no worker has registered</p>{{/workers_any}}

<h2>Queue</h2>
{{#queue_any}}
<table id="queue">
<tr><th>job</th><th>name</th><th>selector</th><th class="n">priority</th><th class="n">attempts</th><th>waiting</th></tr>
{{#queue}}
<tr><td>{{id}}</td><td>{{name}}</td><td>{{selector}}</td><td class="n">{{priority}}</td><td class="n">{{attempts}}</td><td>{{waiting}}</td></tr>
{{/queue}}
</table>
{{/queue_any}}
{{^queue_any}}<p class="empty" id="queue">the queue is empty</p>{{/queue_any}}

<h2>Recent jobs</h2>
{{#recent_any}}
<table id="recent">
<tr><th>job</th><th>name</th><th>state</th><th>worker</th><th class="n">attempts</th><th>ended</th><th>log</th></tr>
{{#recent}}
<tr><td>{{id}}</td><td>{{name}}</td><td class="{{state}}">{{state}}{{#verdict}} ({{verdict}}){{/verdict}}</td><td>{{worker}}</td><td class="n">{{attempts}}</td><td>{{ended}}</td>
<td>{{#log}}<details><summary>log</summary><pre>{{log}}</pre></details>{{/log}}</td></tr>
{{/recent}}
</table>
{{/recent_any}}
{{^recent_any}}<p class="empty" id="recent">no job has finished yet</p>{{/recent_any}}

<h2>Conformance history</h2>
{{#conf_any}}
<table id="conformance">
<tr><th>run</th><th>started</th><th class="n">passed</th><th class="n">failed</th><th class="n">unsupported</th><th class="n">other</th></tr>
{{#conformance}}
<tr><td>{{run}}</td><td>{{started}} ago</td><td class="n passed">{{passed}}</td><td class="n failed">{{failed}}</td><td class="n">{{unsupported}}</td><td class="n">{{other}}</td></tr>
{{/conformance}}
</table>
{{/conf_any}}
{{^conf_any}}<p class="empty" id="conformance">no conformance run yet</p>{{/conf_any}}
</body>
</html>
)HTML";

std::string utc(int64_t ms) {
  const time_t t = time_t(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

std::string ago(int64_t now_ms, int64_t then_ms) {
  if (then_ms <= 0) return "never";
  const int64_t s = std::max<int64_t>(0, (now_ms - then_ms) / 1000);
  if (s < 120) return std::to_string(s) + " s";
  if (s < 2 * 3600) return std::to_string(s / 60) + " min";
  if (s < 2 * 86400) return std::to_string(s / 3600) + " h";
  return std::to_string(s / 86400) + " d";
}

std::string render_web_page(const WebSnapshot& s) {
  data d;
  d.set("farm", s.farm_name);
  d.set("refresh", std::to_string(kRefreshSeconds));
  d.set("now", utc(s.now_ms));
  size_t healthy = 0;
  list workers;
  for (const auto& w : s.workers) {
    if (w.health == "healthy") ++healthy;
    object o{{"name", w.name}, {"health", w.health}, {"target", w.target}, {"slots", std::to_string(w.slots)},
             {"seen", ago(s.now_ms, w.last_seen_ms)}};
    list labels, jobs;
    for (const auto& l : w.labels) labels.push_back(data(l));
    for (const auto& j : w.current_jobs) jobs.push_back(data(j));
    o["labels"] = labels;
    o["jobs"] = jobs;
    workers.push_back(o);
  }
  d.set("workers", workers);
  d.set("workers_any", !s.workers.empty());
  d.set("n_workers", std::to_string(s.workers.size()));
  d.set("n_healthy", std::to_string(healthy));
  list queue;
  for (const auto& j : s.queue)
    queue.push_back(object{{"id", j.id}, {"name", j.name}, {"selector", j.selector},
                           {"priority", std::to_string(j.priority)}, {"attempts", std::to_string(j.attempts)},
                           {"waiting", ago(s.now_ms, j.created_ms)}});
  d.set("queue", queue);
  d.set("queue_any", !s.queue.empty());
  d.set("n_queue", std::to_string(s.queue.size()));
  list recent;
  for (const auto& j : s.recent) {
    object o{{"id", j.id},           {"name", j.name},
             {"state", j.state},     {"worker", j.worker},
             {"attempts", std::to_string(j.attempts)},
             {"ended", j.finished_ms ? ago(s.now_ms, j.finished_ms) + " ago" : std::string("-")}};
    // A section on an empty string is false: no verdict / no log, nothing shown.
    o["verdict"] = j.verdict.empty() ? data(false) : data(j.verdict);
    o["log"] = j.log_tail.empty() ? data(false) : data(j.log_tail);
    recent.push_back(o);
  }
  d.set("recent", recent);
  d.set("recent_any", !s.recent.empty());
  list conf;
  for (const auto& c : s.conformance)
    conf.push_back(object{{"run", c.run},
                          {"started", ago(s.now_ms, c.started_ms)},
                          {"passed", std::to_string(c.passed)},
                          {"failed", std::to_string(c.failed)},
                          {"unsupported", std::to_string(c.unsupported)},
                          {"other", std::to_string(c.other)}});
  d.set("conformance", conf);
  d.set("conf_any", !s.conformance.empty());
  mustache tmpl{kTemplate};
  if (!tmpl.is_valid()) throw std::logic_error("web page template: " + tmpl.error_message());
  std::string out = tmpl.render(d);
  if (!tmpl.error_message().empty()) throw std::logic_error("web page template: " + tmpl.error_message());
  return out;
}

}  // namespace farmd
