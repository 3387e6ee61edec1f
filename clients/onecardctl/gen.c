/*
 * gen.c: onecardctl gen, a deterministic synthetic population.
 *
 * Owns the PRNG (xoshiro256** seeded by splitmix64, so a seed means the same
 * rows everywhere), the name, region and street tables, cn-id construction
 * (region, birth date, sequence with the sex in its parity, MOD 11-2 check)
 * and the bookkeeping that keeps every identifier unique: a set of the
 * cn-id prefixes handed out, a bijection of the row number for cn-ssc, and a
 * counter per hospital for visit cards. It writes CSV and never talks to the
 * broker.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

/* Surnames with their share of the population in hundredths of a percent
 * (Ministry of Public Security ranking, rounded). */
static const struct {
	const char *name;
	unsigned weight;
} gen_surnames[] = {{"王", 712}, {"李", 700}, {"张", 674}, {"刘", 538},
    {"陈", 453}, {"杨", 308}, {"赵", 229}, {"黄", 223}, {"周", 190},
    {"吴", 205}, {"徐", 167}, {"孙", 154}, {"胡", 134}, {"朱", 128},
    {"高", 105}, {"林", 95}, {"何", 113}, {"郭", 113}, {"马", 144}, {"罗", 86},
    {"梁", 81}, {"宋", 68}, {"郑", 79}, {"谢", 71}, {"韩", 66}, {"唐", 69},
    {"冯", 61}, {"于", 46}, {"董", 52}, {"肖", 55}, {"程", 42}, {"曹", 62},
    {"袁", 49}, {"邓", 61}, {"许", 64}, {"傅", 25}, {"沈", 36}, {"曾", 57},
    {"彭", 58}, {"吕", 39}, {"苏", 41}, {"卢", 35}, {"蒋", 47}, {"蔡", 45},
    {"贾", 27}, {"丁", 38}, {"魏", 40}, {"薛", 21}, {"叶", 41}, {"阎", 10},
    {"余", 44}, {"潘", 46}, {"杜", 43}, {"戴", 15}, {"夏", 26}, {"聂", 10},
    {"汪", 29}, {"田", 52}, {"任", 37}, {"姜", 34}, {"范", 29}, {"方", 25},
    {"石", 28}, {"姚", 35}, {"谭", 31}, {"廖", 28}, {"邹", 24}, {"熊", 23},
    {"金", 28}, {"陆", 30}, {"郝", 17}, {"孔", 14}, {"白", 24}, {"崔", 33},
    {"康", 14}, {"毛", 17}, {"邱", 22}, {"秦", 23}, {"江", 22}, {"史", 19},
    {"顾", 17}, {"侯", 20}, {"邵", 16}, {"孟", 23}, {"龙", 19}, {"万", 16},
    {"段", 20}, {"雷", 20}, {"钱", 16}, {"汤", 14}, {"尹", 22}, {"黎", 18},
    {"易", 13}, {"常", 14}, {"武", 15}, {"乔", 13}, {"贺", 18}, {"赖", 12},
    {"龚", 16}, {"文", 13}, {"闫", 21}, {"付", 25}, {"钟", 32}};

/* Characters of given names; men, women, and either. */
static const char *const gen_given_m[] = {"伟", "强", "磊", "军", "勇", "杰",
    "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波",
    "浩", "宇", "俊", "帅", "凯", "建", "国", "志", "龙", "海", "峰", "亮",
    "东", "林", "成", "武", "振", "晨", "博", "豪", "旭", "阳"};
static const char *const gen_given_f[] = {"芳", "娜", "敏", "静", "秀", "丽",
    "艳", "娟", "霞", "燕", "玲", "桂", "英", "红", "梅", "琳", "婷", "雪",
    "慧", "倩", "颖", "洁", "晶", "欣", "怡", "佳", "萍", "兰", "丹", "玉",
    "璐", "悦", "琪", "蕾", "月", "彤", "萱", "瑶", "雨", "爱"};
static const char *const gen_given_x[] = {"文", "子", "思", "嘉", "晓", "天",
    "春", "金", "新", "永", "小", "一", "家", "德", "秋", "梓", "云", "立",
    "建", "玉"};

/* Henan regions by GB/T 2260 code; Xuchang weighs most. */
static const struct {
	const char *code;
	const char *city;
	const char *district;
	unsigned weight;
} gen_regions[] = {{"411002", "许昌市", "魏都区", 18},
    {"411003", "许昌市", "建安区", 12}, {"411024", "许昌市", "鄢陵县", 8},
    {"411025", "许昌市", "襄城县", 8}, {"411081", "许昌市", "禹州市", 12},
    {"411082", "许昌市", "长葛市", 10}, {"410102", "郑州市", "中原区", 5},
    {"410103", "郑州市", "二七区", 4}, {"410105", "郑州市", "金水区", 6},
    {"410302", "洛阳市", "老城区", 3}, {"410305", "洛阳市", "涧西区", 3},
    {"410202", "开封市", "龙亭区", 2}, {"410402", "平顶山市", "新华区", 3},
    {"410502", "安阳市", "文峰区", 2}, {"410702", "新乡市", "红旗区", 2},
    {"411102", "漯河市", "源汇区", 3}, {"411302", "南阳市", "宛城区", 3},
    {"411402", "商丘市", "梁园区", 2}, {"411602", "周口市", "川汇区", 3},
    {"411702", "驻马店市", "驿城区", 2}};

static const char *const gen_streets[] = {"建设路", "人民路", "解放路",
    "文化路", "中原路", "八一路", "七一路", "延安路", "劳动路", "东大街",
    "西大街", "南关大街", "北关大街", "新兴路", "学院路", "许继大道", "魏文路",
    "莲城大道", "健康路", "光明路", "育才路", "五一路"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct gen {
	struct gen_options opt;
	char **codes;
	size_t ncodes;
	unsigned long made;
	uint64_t s[4];  /* xoshiro256** state */
	uint64_t *used; /* cn-id prefixes handed out (0: empty) */
	size_t usedmask;
	unsigned long *visits; /* visit cards issued per hospital */
	uint64_t ssc_key;
	unsigned surname_total;
	unsigned region_total;
	/* --duplicates: the copies' own stream, the original a copy is
	 * made of when one is due, and the copies' card counters. */
	struct gen_dup_rng dr;
	double dup_chance; /* of a copy after an original */
	int pending;
	unsigned long originals;
	struct gen_patient orig;
	unsigned long *dvisits;
};

/* splitmix64: seeds xoshiro and mixes the seed. */
static uint64_t
gen_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t
gen_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 random bits. */
static uint64_t
gen_rand(struct gen *g)
{
	uint64_t *s = g->s, r = gen_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = gen_rotl(s[3], 45);
	return r;
}

/* A number in [0, n). */
static uint64_t
gen_below(struct gen *g, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)gen_rand(g) * n) >> 64);
}

char
gen_cnid_check(const char *id17)
{
	static const int w[17] = {
	    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	int i, sum = 0;

	for (i = 0; i < 17; i++)
		sum += (id17[i] - '0') * w[i];
	return "10X98765432"[sum % 11];
}

int
gen_cnid_valid(const char *id)
{
	int i;

	if (strlen(id) != 18)
		return 0;
	for (i = 0; i < 17; i++)
		if (id[i] < '0' || id[i] > '9')
			return 0;
	return gen_cnid_check(id) == id[17];
}

struct gen *
gen_new(const struct gen_options *opt)
{
	struct gen *g;
	size_t i, slots;
	uint64_t x = opt->seed;
	char code[32];

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->opt = *opt;
	g->ncodes = opt->codes != NULL ? opt->ncodes : opt->hospitals;
	g->codes = calloc(g->ncodes + 1, sizeof(*g->codes));
	g->visits = calloc(g->ncodes + 1, sizeof(*g->visits));
	g->dvisits = calloc(g->ncodes + 1, sizeof(*g->dvisits));
	for (slots = 1024; slots < 2 * (size_t)opt->patients + 2; slots *= 2)
		;
	g->used = calloc(slots, sizeof(*g->used));
	g->usedmask = slots - 1;
	if (g->codes == NULL || g->visits == NULL || g->used == NULL ||
	    g->dvisits == NULL)
		goto fail;
	for (i = 0; i < g->ncodes; i++) {
		if (opt->codes != NULL)
			g->codes[i] = strdup(opt->codes[i]);
		else {
			snprintf(code, sizeof(code), "H%03zu", i + 1);
			g->codes[i] = strdup(code);
		}
		if (g->codes[i] == NULL)
			goto fail;
	}
	for (i = 0; i < 4; i++)
		g->s[i] = gen_splitmix(&x);
	g->ssc_key = gen_rand(g);
	x = opt->seed ^ 0x6475706c69636174ULL; /* "duplicat" */
	for (i = 0; i < 4; i++)
		g->dr.s[i] = gen_splitmix(&x);
	/* a copy after an original with this chance makes the share of
	 * copies among all rows opt->duplicates */
	if (opt->duplicates > 0 && opt->duplicates <= GEN_MAX_DUPLICATES)
		g->dup_chance = opt->duplicates / (1 - opt->duplicates);
	for (i = 0; i < NELEM(gen_surnames); i++)
		g->surname_total += gen_surnames[i].weight;
	for (i = 0; i < NELEM(gen_regions); i++)
		g->region_total += gen_regions[i].weight;
	return g;
fail:
	gen_free(g);
	return NULL;
}

void
gen_free(struct gen *g)
{
	size_t i;

	if (g == NULL)
		return;
	if (g->codes != NULL)
		for (i = 0; i < g->ncodes; i++)
			free(g->codes[i]);
	free(g->codes);
	free(g->visits);
	free(g->dvisits);
	free(g->used);
	free(g);
}

/* A keyed one-to-one map of [0, 10^10): a four-round Feistel network on two
 * five-digit halves, so cn-ssc and visit card numbers are unique yet look
 * random (and two seeds rarely hand out the same one). */
static uint64_t
gen_permute(uint64_t key, uint64_t x)
{
	uint64_t l = x / 100000, r = x % 100000, t, k;
	int round;

	for (round = 0; round < 4; round++) {
		k = key + (uint64_t)round * 0x9e3779b97f4a7c15ULL + r;
		t = r;
		r = (l + gen_splitmix(&k) % 100000) % 100000;
		l = t;
	}
	return l * 100000 + r;
}

/* Claim a 17-digit cn-id prefix; 0 when it was already handed out. */
static int
gen_claim(struct gen *g, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & g->usedmask;

	for (; g->used[i] != 0; i = (i + 1) & g->usedmask)
		if (g->used[i] == key)
			return 0;
	g->used[i] = key;
	return 1;
}

static int
gen_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Pick an index from a table by weight. */
#define GEN_PICK(g, table, total, out)                                         \
	do {                                                                   \
		uint64_t r_ = gen_below((g), (total));                         \
		for ((out) = 0; (out) < NELEM(table) - 1; (out)++) {           \
			if (r_ < (table)[(out)].weight)                        \
				break;                                         \
			r_ -= (table)[(out)].weight;                           \
		}                                                              \
	} while (0)

/* Fill p->cnid (unique) and p->birth_date for a patient of this sex. */
static void
gen_cnid(struct gen *g, struct gen_patient *p, size_t region, int male)
{
	static const int mdays[12] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	char id17[40], date[40];
	int y, m, d, seq, tries;

	for (;;) {
		y = 1930 + (int)gen_below(g, 2024 - 1930 + 1);
		m = 1 + (int)gen_below(g, 12);
		d = 1 +
		    (int)gen_below(
			g, (uint64_t)(mdays[m - 1] + (m == 2 && gen_leap(y))));
		seq = (int)gen_below(g, 500) * 2 + (male ? 1 : 0);
		for (tries = 0; tries < 500; tries++) {
			snprintf(id17, sizeof(id17), "%s%04d%02d%02d%03d",
			    gen_regions[region].code, y, m, d, seq);
			if (gen_claim(g, strtoull(id17, NULL, 10)))
				goto found;
			seq = (seq + 2) % 1000;
		}
	}
found:
	memcpy(p->cnid, id17, 17);
	p->cnid[17] = gen_cnid_check(id17);
	p->cnid[18] = '\0';
	snprintf(date, sizeof(date), "%04d-%02d-%02d", y, m, d);
	memcpy(p->birth_date, date, sizeof(p->birth_date) - 1);
	p->birth_date[sizeof(p->birth_date) - 1] = '\0';
}

/* The copy of g->orig that is due: the error model of gen_dup.c and one
 * visit card, numbered down from the top so it is no original's. */
static int
gen_next_dup(struct gen *g, struct gen_patient *p)
{
	struct csv_row *row = &p->row;
	size_t k = (size_t)(gen_dup_rand(&g->dr) % g->ncodes);

	g->pending = 0;
	gen_dup_make(&g->dr, &g->orig, p);
	snprintf(p->visit_domain[0], sizeof(p->visit_domain[0]), "hosp:%s",
	    g->codes[k]);
	snprintf(p->visit_value[0], sizeof(p->visit_value[0]), "MZ%010llu",
	    (unsigned long long)gen_permute(
		g->ssc_key ^ (0x5851f42d4c957f2dULL * (k + 1)),
		9999999999ULL - g->dvisits[k]++));
	row->name = p->name;
	row->sex = p->sex;
	row->birth_date = p->birth_date;
	row->phone = p->phone;
	row->address = p->address;
	row->nids = 1;
	row->ids[0].domain = p->visit_domain[0];
	row->ids[0].value = p->visit_value[0];
	g->made++;
	return 0;
}

int
gen_next(struct gen *g, struct gen_patient *p)
{
	struct csv_row *row = &p->row;
	size_t s, r, i, j, k, pick[GEN_MAX_VISITS], nvis;
	int male, n;
	uint64_t ssc;
	const char *const *given;
	size_t ngiven;

	if (g->made >= g->opt.patients)
		return -1;
	if (g->pending)
		return gen_next_dup(g, p);
	male = gen_below(g, 2) == 0;
	GEN_PICK(g, gen_surnames, g->surname_total, s);
	GEN_PICK(g, gen_regions, g->region_total, r);
	given = male ? gen_given_m : gen_given_f;
	ngiven = male ? NELEM(gen_given_m) : NELEM(gen_given_f);
	n = snprintf(p->name, sizeof(p->name), "%s", gen_surnames[s].name);
	if (gen_below(g, 4) != 0 && n > 0) /* three of four have two chars */
		n += snprintf(p->name + n, sizeof(p->name) - (size_t)n, "%s",
		    gen_below(g, 3) == 0
			? gen_given_x[gen_below(g, NELEM(gen_given_x))]
			: given[gen_below(g, ngiven)]);
	if (n > 0)
		snprintf(p->name + n, sizeof(p->name) - (size_t)n, "%s",
		    given[gen_below(g, ngiven)]);
	snprintf(p->sex, sizeof(p->sex), "%s", male ? "M" : "F");
	gen_cnid(g, p, r, male);

	p->phone[0] = '\0';
	if (gen_below(g, 10) != 0)
		snprintf(p->phone, sizeof(p->phone), "1%c%09llu",
		    "35789"[gen_below(g, 5)],
		    (unsigned long long)gen_below(g, 1000000000ULL));
	snprintf(p->address, sizeof(p->address), "河南省%s%s%s%u号",
	    gen_regions[r].city, gen_regions[r].district,
	    gen_streets[gen_below(g, NELEM(gen_streets))],
	    (unsigned)(1 + gen_below(g, 300)));

	row->name = p->name;
	row->sex = p->sex;
	row->birth_date = p->birth_date;
	row->phone = p->phone;
	row->address = p->address;
	row->nids = 0;
	row->ids[row->nids].domain = "cn-id";
	row->ids[row->nids++].value = p->cnid;
	if (gen_below(g, 100) < 85) {
		ssc = gen_permute(g->ssc_key, g->originals);
		snprintf(p->ssc, sizeof(p->ssc), "HA%010llu",
		    (unsigned long long)ssc);
		row->ids[row->nids].domain = "cn-ssc";
		row->ids[row->nids++].value = p->ssc;
	}
	nvis = g->ncodes == 0 ? 0 : gen_below(g, GEN_MAX_VISITS + 1);
	if (nvis > g->ncodes)
		nvis = g->ncodes;
	for (i = 0; i < nvis; i++) {
		do {
			k = gen_below(g, g->ncodes);
			for (j = 0; j < i && pick[j] != k; j++)
				;
		} while (j < i);
		pick[i] = k;
		snprintf(p->visit_domain[i], sizeof(p->visit_domain[i]),
		    "hosp:%s", g->codes[k]);
		snprintf(p->visit_value[i], sizeof(p->visit_value[i]),
		    "MZ%010llu",
		    (unsigned long long)gen_permute(
			g->ssc_key ^ (0x5851f42d4c957f2dULL * (k + 1)),
			g->visits[k]++));
		row->ids[row->nids].domain = p->visit_domain[i];
		row->ids[row->nids++].value = p->visit_value[i];
	}
	g->made++;
	p->cluster = ++g->originals;
	p->dup = 0;
	p->errors[0] = '\0';
	if (g->dup_chance > 0 && g->ncodes > 0 && g->made < g->opt.patients &&
	    (double)(gen_dup_rand(&g->dr) >> 11) / 9007199254740992.0 <
		g->dup_chance) {
		g->pending = 1;
		g->orig = *p;
	}
	return 0;
}

static void
gen_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: onecardctl gen --patients N [--hospitals H] [--seed S]\n"
	    "                      [--hospital-codes A,B,C] [--out FILE]\n"
	    "                      [--duplicates RATE [--truth FILE]]\n"
	    "Write N synthetic patients as import CSV (docs/csv.md); the same\n"
	    "seed gives the same file. Hospitals are H001..Hnnn (default 10)\n"
	    "unless --hospital-codes names them. --duplicates makes RATE (0 "
	    "to\n"
	    "0.5) of the rows corrupted copies of the row before them and\n"
	    "writes the clusters to --truth (default: OUT with .truth.csv).\n");
}

/* Parse a whole unsigned number; -1 if s is not one. */
static int
gen_number(const char *s, unsigned long long *out)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	*out = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

int
ctl_gen(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"patients", required_argument, NULL, 'n'},
	    {"hospitals", required_argument, NULL, 'H'},
	    {"seed", required_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    {"hospital-codes", required_argument, NULL, 'c'},
	    {"duplicates", required_argument, NULL, 'd'},
	    {"truth", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct gen_options opt = {.hospitals = 10, .seed = 1};
	struct gen_patient *p = NULL;
	struct gen *g = NULL;
	const char *out = NULL, *truth = NULL;
	char truth_buf[4096], orig_id[64] = "", *end;
	unsigned long written = 0;
	FILE *tf = NULL;
	char *codes = NULL, *c, **list = NULL;
	unsigned long long v;
	int ch, have_n = 0, rc = 2;
	FILE *fp = stdout;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
		case 'H':
		case 's':
			if (gen_number(optarg, &v) == -1 ||
			    (ch == 'H' && v > 99999)) {
				fprintf(stderr,
				    "onecardctl gen: bad number \"%s\"\n",
				    optarg);
				return 2;
			}
			if (ch == 'n') {
				opt.patients = (unsigned long)v;
				have_n = 1;
			} else if (ch == 'H')
				opt.hospitals = (unsigned)v;
			else
				opt.seed = v;
			break;
		case 'o':
			out = optarg;
			break;
		case 'd':
			errno = 0;
			opt.duplicates = strtod(optarg, &end);
			if (errno != 0 || *optarg == '\0' || *end != '\0' ||
			    !(opt.duplicates >= 0 &&
				opt.duplicates <= GEN_MAX_DUPLICATES)) {
				fprintf(stderr,
				    "onecardctl gen: --duplicates: \"%s\" is "
				    "not a rate from 0 to 0.5\n",
				    optarg);
				free(codes);
				return 2;
			}
			break;
		case 't':
			truth = optarg;
			break;
		case 'c':
			free(codes);
			codes = strdup(optarg);
			break;
		case 'h':
			gen_usage(stdout);
			return 0;
		default:
			gen_usage(stderr);
			return 2;
		}
	}
	if (!have_n || optind != argc) {
		gen_usage(stderr);
		free(codes);
		return 2;
	}
	if (opt.duplicates > 0 && truth == NULL) {
		size_t n = out != NULL ? strlen(out) : 0;

		if (out == NULL || n + 16 > sizeof(truth_buf)) {
			fprintf(stderr,
			    "onecardctl gen: --duplicates needs "
			    "--truth FILE (or --out)\n");
			free(codes);
			return 2;
		}
		if (n > 4 && strcmp(out + n - 4, ".csv") == 0)
			n -= 4;
		snprintf(truth_buf, sizeof(truth_buf), "%.*s.truth.csv", (int)n,
		    out);
		truth = truth_buf;
	}
	if (codes != NULL) {
		list = calloc(strlen(codes) / 2 + 2, sizeof(*list));
		if (list == NULL)
			goto done;
		for (c = strtok(codes, ","); c != NULL; c = strtok(NULL, ","))
			list[opt.ncodes++] = c;
		opt.codes = (const char *const *)list;
	}
	if ((g = gen_new(&opt)) == NULL || (p = malloc(sizeof(*p))) == NULL) {
		fprintf(stderr, "onecardctl gen: out of memory\n");
		goto done;
	}
	if (out != NULL && (fp = fopen(out, "w")) == NULL) {
		fprintf(
		    stderr, "onecardctl gen: %s: %s\n", out, strerror(errno));
		goto done;
	}
	if (opt.duplicates > 0) {
		if ((tf = fopen(truth, "w")) == NULL) {
			fprintf(stderr, "onecardctl gen: %s: %s\n", truth,
			    strerror(errno));
			goto done;
		}
		fputs("cluster,identifier,errors\n", tf);
	}
	setvbuf(fp, NULL, _IOFBF, 1 << 20);
	fputs(CSV_HEADER "\n", fp);
	while (gen_next(g, p) == 0) {
		csv_write_row(fp, &p->row);
		if (tf == NULL)
			continue;
		if (!p->dup) {
			snprintf(orig_id, sizeof(orig_id), "%s=%s",
			    p->row.ids[0].domain, p->row.ids[0].value);
			continue;
		}
		/* a cluster: the original, then each copy with its errors */
		if (written != p->cluster)
			fprintf(tf, "%lu,%s,\n", p->cluster, orig_id);
		written = p->cluster;
		fprintf(tf, "%lu,%s=%s,%s\n", p->cluster, p->row.ids[0].domain,
		    p->row.ids[0].value, p->errors);
	}
	if (tf != NULL && (fflush(tf) != 0 || ferror(tf))) {
		fprintf(
		    stderr, "onecardctl gen: %s: %s\n", truth, strerror(errno));
		goto done;
	}
	if (fflush(fp) != 0 || ferror(fp)) {
		fprintf(stderr, "onecardctl gen: %s: %s\n",
		    out != NULL ? out : "stdout", strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (fp != stdout && fp != NULL && fclose(fp) != 0 && rc == 0) {
		fprintf(
		    stderr, "onecardctl gen: %s: %s\n", out, strerror(errno));
		rc = 2;
	}
	if (tf != NULL && fclose(tf) != 0 && rc == 0) {
		fprintf(
		    stderr, "onecardctl gen: %s: %s\n", truth, strerror(errno));
		rc = 2;
	}
	free(p);
	gen_free(g);
	free(list);
	free(codes);
	return rc;
}
