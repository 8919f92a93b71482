#include "diff.h"
#include "sbuf.h"

#include <stdlib.h>
#include <string.h>

#define CONTEXT 3
#define MAX_D 2000 /* differences searched for at most (memory ~ MAX_D^2 ints) */

struct line {
	const char *p;
	size_t len; /* with its '\n', if it has one */
};

struct ops {
	char *op; /* '=', '-', '+' */
	int *ai, *bi; /* the line of a (for '=' and '-') and of b (for '=' and '+') */
	int n;
};

static int split(const char *s, size_t n, struct line **out)
{
	int count = 0;
	for (size_t i = 0; i < n; i++)
		count += s[i] == '\n';
	count += n && s[n - 1] != '\n';
	*out = malloc(((size_t)count + 1) * sizeof(**out));
	if (!*out)
		return -1;
	int k = 0;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) + 1 : n - i;
		(*out)[k++] = (struct line){s + i, len};
		i += len;
	}
	return count;
}

static int eq(const struct line *x, const struct line *y)
{
	return x->len == y->len && !memcmp(x->p, y->p, x->len);
}

static void push(struct ops *o, char op, int ai, int bi)
{
	o->op[o->n] = op;
	o->ai[o->n] = ai;
	o->bi[o->n] = bi;
	o->n++;
}

/* Myers' forward pass over a[0..n) and b[0..m); trace[d] holds V of round d for k in
 * [-d, d]. The number of differences, or -1 past MAX_D (or out of memory). */
static int forward(const struct line *a, int n, const struct line *b, int m, int ***trace)
{
	int max = n + m, dmax = max < MAX_D ? max : MAX_D;
	int *v = calloc((size_t)(2 * max + 3), sizeof(int));
	int **tr = calloc((size_t)dmax + 1, sizeof(int *));
	int found = -1;
	if (!v || !tr)
		goto out;
	int *V = v + max + 1;
	for (int d = 0; d <= dmax && found < 0; d++) {
		for (int k = -d; k <= d; k += 2) {
			int x = (k == -d || (k != d && V[k - 1] < V[k + 1])) ? V[k + 1] : V[k - 1] + 1;
			int y = x - k;
			while (x < n && y < m && eq(&a[x], &b[y]))
				x++, y++;
			V[k] = x;
			if (x >= n && y >= m)
				found = d;
		}
		if (!(tr[d] = malloc((size_t)(2 * d + 1) * sizeof(int)))) {
			found = -1;
			break;
		}
		memcpy(tr[d], V - d, (size_t)(2 * d + 1) * sizeof(int));
	}
out:
	free(v);
	*trace = tr;
	return found;
}

/* Appends the script of the middle (a and b offset by off) to o, backwards first. */
static void backtrack(int **tr, int d, int n, int m, int off, struct ops *o)
{
	int start = o->n, x = n, y = m;
	for (; d > 0; d--) {
		const int *P = tr[d - 1] + (d - 1); /* P[k] for k in [-(d-1), d-1] */
		int k = x - y;
		int down = k == -d || (k != d && P[k - 1] < P[k + 1]);
		int pk = down ? k + 1 : k - 1, px = P[pk], py = px - pk;
		int sx = down ? px : px + 1, sy = down ? py + 1 : py; /* after the move */
		while (x > sx && y > sy)
			x--, y--, push(o, '=', off + x, off + y);
		if (down)
			push(o, '+', -1, off + py);
		else
			push(o, '-', off + px, -1);
		x = px;
		y = py;
	}
	while (x > 0 && y > 0)
		x--, y--, push(o, '=', off + x, off + y);
	for (int i = start, j = o->n - 1; i < j; i++, j--) {
		char c = o->op[i];
		int ai = o->ai[i], bi = o->bi[i];
		o->op[i] = o->op[j], o->ai[i] = o->ai[j], o->bi[i] = o->bi[j];
		o->op[j] = c, o->ai[j] = ai, o->bi[j] = bi;
	}
}

/* The edit script of a into b. */
static int script(const struct line *a, int n, const struct line *b, int m, struct ops *o)
{
	size_t cap = (size_t)n + (size_t)m + 1;
	o->op = malloc(cap);
	o->ai = malloc(cap * sizeof(int));
	o->bi = malloc(cap * sizeof(int));
	o->n = 0;
	if (!o->op || !o->ai || !o->bi)
		return -1;
	int pre = 0, suf = 0;
	while (pre < n && pre < m && eq(&a[pre], &b[pre]))
		push(o, '=', pre, pre), pre++;
	while (suf < n - pre && suf < m - pre && eq(&a[n - 1 - suf], &b[m - 1 - suf]))
		suf++;
	int **tr = NULL, mn = n - pre - suf, mm = m - pre - suf;
	int d = forward(a + pre, mn, b + pre, mm, &tr);
	if (d >= 0) {
		backtrack(tr, d, mn, mm, pre, o);
	} else { /* too different: the middle removed, then added */
		for (int i = 0; i < mn; i++)
			push(o, '-', pre + i, -1);
		for (int i = 0; i < mm; i++)
			push(o, '+', -1, pre + i);
	}
	for (int i = 0; tr && i <= (d >= 0 ? d : (mn + mm < MAX_D ? mn + mm : MAX_D)); i++)
		free(tr[i]);
	free(tr);
	for (int i = 0; i < suf; i++)
		push(o, '=', n - suf + i, m - suf + i);
	return 0;
}

static void put_line(struct sbuf *s, char mark, const struct line *l)
{
	sbuf_add(s, &mark, 1);
	sbuf_add(s, l->p, l->len);
	if (!l->len || l->p[l->len - 1] != '\n')
		sbuf_puts(s, "\n\\ No newline at end of file\n");
}

/* The hunk of ops [hs, he). */
static void hunk(struct sbuf *s, const struct ops *o, int hs, int he, const struct line *a,
		 const struct line *b)
{
	int as = -1, bs = -1, ac = 0, bc = 0, a_before = 0, b_before = 0;
	for (int i = 0; i < hs; i++)
		a_before += o->op[i] != '+', b_before += o->op[i] != '-';
	for (int i = hs; i < he; i++) {
		ac += o->op[i] != '+';
		bc += o->op[i] != '-';
	}
	as = ac ? a_before + 1 : a_before;
	bs = bc ? b_before + 1 : b_before;
	sbuf_printf(s, "@@ -%d,%d +%d,%d @@\n", as, ac, bs, bc);
	for (int i = hs; i < he; i++)
		put_line(s, o->op[i] == '=' ? ' ' : o->op[i],
			 o->op[i] == '+' ? &b[o->bi[i]] : &a[o->ai[i]]);
}

static void hunks(struct sbuf *s, const struct ops *o, const struct line *a,
		  const struct line *b)
{
	int i = 0, T = o->n;
	while (i < T) {
		int c = i;
		while (c < T && o->op[c] == '=')
			c++;
		if (c == T)
			break;
		int hs = c - CONTEXT > i ? c - CONTEXT : i, e = c;
		for (;;) {
			while (e < T && o->op[e] != '=')
				e++;
			int q = e;
			while (q < T && o->op[q] == '=')
				q++;
			if (q < T && q - e <= 2 * CONTEXT) {
				e = q;
				continue;
			}
			break;
		}
		int he = e + CONTEXT < T ? e + CONTEXT : T;
		hunk(s, o, hs, he, a, b);
		i = he;
	}
}

char *diff_unified(const char *name, const char *at, size_t alen, const char *bt, size_t blen)
{
	struct line *a = NULL, *b = NULL;
	struct ops o = {0};
	struct sbuf s = {0};
	int n = split(at, alen, &a), m = split(bt, blen, &b);
	if (n < 0 || m < 0 || script(a, n, b, m, &o))
		s.failed = 1;
	else if (!(alen == blen && !memcmp(at, bt, alen))) {
		sbuf_printf(&s, "--- a/%s\n+++ b/%s\n", name, name);
		hunks(&s, &o, a, b);
	}
	free(a);
	free(b);
	free(o.op);
	free(o.ai);
	free(o.bi);
	return sbuf_take(&s, NULL);
}
