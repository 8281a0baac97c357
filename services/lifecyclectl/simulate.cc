#include "services/lifecyclectl/simulate.h"

#include <algorithm>
#include <random>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"

namespace lifecycle::sim {
namespace {

constexpr int64_t kDay = 86400;

// Distributions, from the seeds' base-customer analysis (seed 002), a dealership in
// Yuci: home region (Yuci 3,033 customers, elsewhere 12,381: 20% / 80%), age bands
// (before the 70s 6%, 70s 21%, 80s 44%, 90s 29%), models (customers by model: Sail 953,
// Cruze 543, Aveo 239, Lova 123, Epica 95, Captiva 34), service visits a year (1: 51%,
// 2: 12%, 3: 8%, 4 or more: 29% of customers), warranty status of the base (first
// service 11%, in warranty 66%, out of warranty 23%). The industry weights are this
// generator's own assumption: the seed's industry chart lists 19 industries and 21
// percentages that cannot be matched to them.
struct Weighted {
  const char* name;
  double weight;
};
constexpr Weighted kRegions[] = {{"yuci", 3033}, {"non-local", 12381}};
constexpr Weighted kIndustries[] = {
    {"manufacturing", 18}, {"wholesale-retail", 21}, {"transport", 8}, {"construction", 8},
    {"it-services", 10},   {"public-sector", 4},     {"education", 3}, {"finance", 2},
    {"hospitality", 3},    {"agriculture", 3},       {"other", 20}};
constexpr Weighted kModels[] = {{"Sail", 953}, {"Cruze", 543}, {"Aveo", 239},
                                {"Lova", 123}, {"Epica", 95},  {"Captiva", 34}};
constexpr Weighted kVisitsPerYear[] = {{"1", 51}, {"2", 12}, {"3", 8}, {"4", 29}};
constexpr Weighted kLostReasons[] = {{"PRICE", 40},   {"COMPETITOR", 25}, {"FINANCING", 15},
                                     {"PRODUCT", 10}, {"SERVICE", 5},     {"OTHER", 5}};

template <size_t N>
size_t Pick(std::mt19937_64& rng, const Weighted (&table)[N]) {
  double total = 0;
  for (const auto& w : table) total += w.weight;
  double x = std::uniform_real_distribution<double>(0, total)(rng);
  for (size_t i = 0; i < N; ++i) {
    if ((x -= table[i].weight) < 0) return i;
  }
  return N - 1;
}

class CustomerHistory {
 public:
  CustomerHistory(const SimOptions& o, int64_t index)
      : o_(o), rng_(o.seed * 1000003ull + static_cast<uint64_t>(index)),
        id_(absl::StrCat("C", 100000 + index)) {}

  std::vector<v1::Event> Generate() {
    const int64_t start = o_.end_seconds - o_.years * 365 * kDay;
    int64_t t = start + Uniform(0, o_.years * 365 * kDay - 30 * kDay);
    Register(t);
    t += Uniform(0, 10) * kDay + Uniform(0, 8 * 3600);
    Lead(t);
    if (Chance(0.25)) {  // a lost deal (战败); some come back later
      t += Uniform(5, 30) * kDay;
      LostDeal(t);
      if (!Chance(0.2)) return Done();
      t += Uniform(90, 400) * kDay;
      if (t >= o_.end_seconds) return Done();
      Lead(t);
    }
    t += Uniform(3, 30) * kDay;
    if (t >= o_.end_seconds) return Done();
    Sale(t);
    const int per_year = std::stoi(kVisitsPerYear[Pick(rng_, kVisitsPerYear)].name);
    const int64_t interval = 365 * kDay / per_year;
    if (o_.population == SimOptions::Population::kDropout) {
      Visits(t, interval);
      return Done();
    }
    const bool goes_quiet = Chance(0.3);
    const int64_t quiet_from = t + Uniform(200, 800) * kDay;
    int visit = 0;
    for (int64_t v = t + interval + Uniform(-20, 20) * kDay; v < o_.end_seconds;
         v += interval + Uniform(-25, 40) * kDay) {
      if (goes_quiet && v > quiet_from) {
        if (Chance(0.15)) {  // won back after a long silence
          const int64_t back = quiet_from + Uniform(400, 700) * kDay;
          if (back < o_.end_seconds) Service(back, visit++, false);
        }
        break;
      }
      const bool late = Chance(0.2);
      Service(v + (late ? Uniform(30, 90) * kDay : 0), visit++, !late);
      if (Chance(0.15)) Campaign(v + Uniform(10, 60) * kDay);
      if (Chance(0.05)) Referral(v + Uniform(5, 90) * kDay);
    }
    return Done();
  }

 private:
  // The kDropout population's visits after the sale at `sale`.
  void Visits(int64_t sale, int64_t mean_interval) {
    const double spread = std::gamma_distribution<double>(8, 1.0 / 8)(rng_);
    const int64_t interval = std::max<int64_t>(30 * kDay, static_cast<int64_t>(mean_interval * spread));
    const double x = std::gamma_distribution<double>(1.2, 1)(rng_);
    const double leave = x / (x + std::gamma_distribution<double>(6, 1)(rng_));
    int visit = 0;
    int64_t v = sale;
    while (!Chance(leave)) {  // still a customer after the activity at v
      v += interval + Uniform(-interval / (8 * kDay), interval / (4 * kDay)) * kDay;
      if (v >= o_.end_seconds) return;
      const bool late = Chance(0.2);
      Service(v + (late ? Uniform(30, 90) * kDay : 0), visit++, !late);
      if (Chance(0.15)) Campaign(v + Uniform(10, 60) * kDay);
      if (Chance(0.05)) Referral(v + Uniform(5, 90) * kDay);
    }
    if (Chance(0.15)) Service(v + Uniform(400, 700) * kDay, visit++, false);  // won back
  }

  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  v1::Event& Add(int64_t at, const char* source) {
    v1::Event& e = events_.emplace_back();
    e.set_event_id(absl::StrCat(id_, "-", events_.size()));
    e.set_customer_id(id_);
    e.mutable_occurred_at()->set_seconds(at);
    e.set_source(source);
    return e;
  }

  // Drawn from a hash of the customer and `what`, not the generator, so the rest of
  // the population stays as it was.
  uint64_t Hash(std::string_view what) const {
    uint64_t h = 14695981039346656037ull;
    for (const char ch : id_) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    for (const char ch : what) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    return h;
  }

  void Register(int64_t t) {
    auto* p = Add(t, "crm").mutable_customer_registered()->mutable_profile();
    // Twelve advisors (销售顾问), and a birthday.
    p->set_advisor_id(absl::StrFormat("adv-%02d", static_cast<int>(Hash("/advisor") % 12) + 1));
    const uint64_t b = Hash("/birthday");
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int month = static_cast<int>(b % 12) + 1;
    p->set_birthday(absl::StrFormat("%02d-%02d", month, static_cast<int>((b >> 8) % kDays[month - 1]) + 1));
    p->set_name(absl::StrCat("Customer ", id_));
    p->set_phone(absl::StrCat("138", 10000000 + rng_() % 90000000));
    p->set_region(kRegions[Pick(rng_, kRegions)].name);
    p->set_industry(kIndustries[Pick(rng_, kIndustries)].name);
    const double a = std::uniform_real_distribution<double>(0, 100)(rng_);
    p->set_age_band(a < 6    ? v1::AGE_BAND_55_PLUS
                    : a < 27 ? v1::AGE_BAND_45_54
                    : a < 71 ? v1::AGE_BAND_35_44
                             : v1::AGE_BAND_25_34);
    model_ = kModels[Pick(rng_, kModels)].name;
    p->set_vehicle_model(model_);
    p->set_channel(Chance(0.5) ? "walk-in" : (Chance(0.5) ? "web" : "referral"));
  }
  void Lead(int64_t t) {
    auto* l = Add(t, "crm").mutable_lead_captured();
    l->set_lead_id(absl::StrCat("L", id_, "-", events_.size()));
    l->set_interest(model_);
    l->set_test_drive(Chance(0.6));
  }
  void LostDeal(int64_t t) {
    auto* d = Add(t, "crm").mutable_deal_lost();
    d->set_lead_id(absl::StrCat("L", id_));
    v1::DealLostReason r = v1::DEAL_LOST_REASON_OTHER;
    v1::DealLostReason_Parse(absl::StrCat("DEAL_LOST_REASON_", kLostReasons[Pick(rng_, kLostReasons)].name), &r);
    d->set_reason(r);
    if (r == v1::DEAL_LOST_REASON_COMPETITOR || Chance(0.3)) d->set_competitor("Other Motors");
    // Most lost prospects are re-contacted on the tasks the lost deal makes (+30 and
    // +90 days); the second call less often than the first. Drawn from a hash of the
    // customer, not the generator, so the rest of the population stays as it was.
    const uint64_t h = Hash("/re-contact");
    if (h % 100 < 70 && t + 31 * kDay < o_.end_seconds) {
      auto* f = Add(t + 30 * kDay + static_cast<int64_t>((h >> 16) % 40000), "crm").mutable_follow_up_contact();
      f->set_kind(v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_1);
      f->set_outcome(v1::FOLLOW_UP_OUTCOME_REACHED);
    }
    if ((h >> 8) % 100 < 50 && t + 91 * kDay < o_.end_seconds) {
      auto* f = Add(t + 90 * kDay + static_cast<int64_t>((h >> 32) % 40000), "crm").mutable_follow_up_contact();
      f->set_kind(v1::FOLLOW_UP_KIND_LOST_DEAL_RECONTACT_2);
      f->set_outcome(v1::FOLLOW_UP_OUTCOME_REACHED);
    }
  }
  void Sale(int64_t t) {
    sale_ = t;
    auto* p = Add(t, "pos").mutable_purchase();
    p->set_order_id(absl::StrCat("O", id_));
    p->mutable_amount()->set_amount_minor(Uniform(80000, 300000) * 100);
    p->mutable_amount()->set_currency("CNY");
    p->set_kind(v1::PURCHASE_KIND_VEHICLE);
    p->set_vehicle_model(model_);
    if (Chance(0.9)) Contact(t + 3 * kDay + Uniform(0, 20000), v1::FOLLOW_UP_KIND_CALLBACK_3_DAY);
    if (Chance(0.8)) Contact(t + 7 * kDay + Uniform(0, 20000), v1::FOLLOW_UP_KIND_CALLBACK_7_DAY);
    if (Chance(0.3)) {
      auto* a = Add(t + Uniform(1, 60) * kDay, "pos").mutable_purchase();
      a->set_order_id(absl::StrCat("A", id_));
      a->mutable_amount()->set_amount_minor(Uniform(500, 8000) * 100);
      a->mutable_amount()->set_currency("CNY");
      a->set_kind(v1::PURCHASE_KIND_ACCESSORIES);
    }
  }
  void Contact(int64_t t, v1::FollowUpKind kind) {
    auto* f = Add(t, "crm").mutable_follow_up_contact();
    f->set_kind(kind);
    f->set_outcome(Chance(0.85) ? v1::FOLLOW_UP_OUTCOME_REACHED : v1::FOLLOW_UP_OUTCOME_NO_ANSWER);
  }
  void Service(int64_t t, int index, bool on_schedule) {
    if (t >= o_.end_seconds) return;
    auto* s = Add(t, "service").mutable_service_visit();
    s->set_visit_id(absl::StrCat("V", id_, "-", index));
    s->set_kind(index == 0 ? v1::SERVICE_KIND_FIRST_MAINTENANCE
                           : (Chance(0.15) ? v1::SERVICE_KIND_REPAIR : v1::SERVICE_KIND_MAINTENANCE));
    s->mutable_amount()->set_amount_minor(Uniform(300, 2500) * 100);
    s->mutable_amount()->set_currency("CNY");
    s->set_odometer_km(5000 + index * 9000 + Uniform(0, 3000));
    const int64_t age_days = (t - sale_) / kDay;
    s->set_warranty_status(index == 0          ? v1::WARRANTY_STATUS_FIRST_SERVICE
                           : age_days < 3 * 365 ? v1::WARRANTY_STATUS_IN_WARRANTY
                                                : v1::WARRANTY_STATUS_OUT_OF_WARRANTY);
    s->set_on_schedule(on_schedule);
    s->set_other_garage(Chance(0.04));
    if (Chance(0.6)) {
      auto* q = Add(t + Uniform(1, 3) * kDay, "crm").mutable_satisfaction_survey();
      q->set_survey_id(absl::StrCat("S", id_, "-", index));
      q->set_score(static_cast<int>(std::min<int64_t>(10, 5 + Uniform(0, 5) + Uniform(0, 1))));
    }
    if (Chance(0.7)) Contact(t + 2 * kDay + Uniform(0, 20000), v1::FOLLOW_UP_KIND_SURVEY_CALLBACK);
    if (Chance(0.05)) {
      const std::string cid = absl::StrCat("K", id_, "-", index);
      // Within two days of the visit, not in its second (a visit and its complaint
      // are two moments: the customer is LOYAL, if at all, between them).
      auto* k = Add(t + 600 + Uniform(0, 2 * kDay), "service").mutable_complaint();
      k->set_complaint_id(cid);
      k->set_category(Chance(0.5) ? "waiting time" : "repair quality");
      k->set_severity(Chance(0.2) ? v1::COMPLAINT_SEVERITY_HIGH : v1::COMPLAINT_SEVERITY_MEDIUM);
      if (Chance(0.7)) {
        auto* r = Add(t + Uniform(3, 12) * kDay, "service").mutable_complaint_resolved();
        r->set_complaint_id(cid);
        r->set_satisfied(Chance(0.7));
      }
    }
  }
  void Campaign(int64_t t) {
    auto* c = Add(t, "campaign").mutable_campaign_participation();
    c->set_campaign_id(absl::StrCat("CAMP-", t / (90 * kDay)));
    c->set_attended(true);
    c->set_brought_prospect(Chance(0.2));
  }
  void Referral(int64_t t) {
    auto* r = Add(t, "crm").mutable_referral();
    r->set_referred_customer_id(absl::StrCat("R", id_, "-", events_.size()));
    r->set_converted(Chance(0.4));
  }

  // Greetings done on the days of the default calendar after the sale (--greetings).
  void Greetings() {
    if (!o_.greetings || sale_ == 0) return;
    const int64_t from_year = 1970 + sale_ / (365 * kDay) - 1;
    const int64_t to_year = 1970 + o_.end_seconds / (365 * kDay) + 1;
    for (int64_t y = from_year; y <= to_year; ++y) {
      const std::string& bd = events_.front().customer_registered().profile().birthday();
      const std::pair<std::string, v1::FollowUpKind> days[] = {
          {absl::StrFormat("%d-01-01", y), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING},
          {absl::StrFormat("%d-05-01", y), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING},
          {absl::StrFormat("%d-10-01", y), v1::FOLLOW_UP_KIND_HOLIDAY_GREETING},
          {absl::StrFormat("%d-%s", y, bd), v1::FOLLOW_UP_KIND_BIRTHDAY_GREETING}};
      for (const auto& [date, kind] : days) {
        google::protobuf::Timestamp ts;
        if (!google::protobuf::util::TimeUtil::FromString(date + "T00:00:00Z", &ts)) continue;
        const uint64_t h = Hash("/greeting/" + date);
        if (ts.seconds() <= sale_ || h % 100 >= 60) continue;
        auto* f = Add(ts.seconds() + static_cast<int64_t>((h >> 8) % (2 * kDay)), "crm")
                      .mutable_follow_up_contact();
        f->set_kind(kind);
        f->set_outcome(v1::FOLLOW_UP_OUTCOME_REACHED);
      }
    }
  }

  std::vector<v1::Event> Done() {
    Greetings();
    events_.erase(std::remove_if(events_.begin(), events_.end(),
                                 [&](const v1::Event& e) {
                                   return e.occurred_at().seconds() >= o_.end_seconds;
                                 }),
                  events_.end());
    std::stable_sort(events_.begin(), events_.end(), [](const v1::Event& a, const v1::Event& b) {
      return a.occurred_at().seconds() < b.occurred_at().seconds();
    });
    return std::move(events_);
  }

  const SimOptions& o_;
  std::mt19937_64 rng_;
  std::string id_;
  std::string model_;
  int64_t sale_ = 0;
  std::vector<v1::Event> events_;
};

}  // namespace

int64_t Simulate(const SimOptions& options, const std::function<void(const v1::Event&)>& emit) {
  int64_t n = 0;
  for (int64_t i = 0; i < options.customers; ++i) {
    for (const auto& e : CustomerHistory(options, i).Generate()) {
      emit(e);
      ++n;
    }
  }
  return n;
}

int64_t SimulateInTimeOrder(const SimOptions& options,
                            const std::function<void(const SerializedEvent&)>& emit,
                            const std::function<void(int64_t)>& progress) {
  // Compact: one byte buffer and a 24-byte index entry per event, sorted by time.
  struct Entry {
    int64_t at;
    uint64_t offset;  // into `buffer`: customer id, then the serialized event
    uint32_t id_size;
    uint32_t size;
  };
  std::string buffer;
  std::vector<Entry> index;
  std::string bytes;
  int64_t n = 0;
  for (int64_t i = 0; i < options.customers; ++i) {
    for (const auto& e : CustomerHistory(options, i).Generate()) {
      bytes.clear();
      e.SerializeToString(&bytes);
      index.push_back({e.occurred_at().seconds(), buffer.size(),
                       static_cast<uint32_t>(e.customer_id().size()),
                       static_cast<uint32_t>(bytes.size())});
      buffer += e.customer_id();
      buffer += bytes;
      if (++n % 100000 == 0 && progress) progress(n);
    }
  }
  std::stable_sort(index.begin(), index.end(),
                   [](const Entry& a, const Entry& b) { return a.at < b.at; });
  const std::string_view all(buffer);
  for (const Entry& x : index) {
    emit({x.at, all.substr(x.offset, x.id_size), all.substr(x.offset + x.id_size, x.size)});
  }
  return n;
}

}  // namespace lifecycle::sim
