/*
 * harness_util.c: small helpers every integration suite needs: a clock, a
 * ping that reports the broker's answer, a plain TCP connection to the
 * broker's port, a count of the broker's open descriptors, and a scrape of
 * its /metrics.
 */
#define _GNU_SOURCE /* strcasestr */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "harness.h"

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
harness_ping(struct onecard_conn *conn)
{
	Onecard__V1__Request req = ONECARD__V1__REQUEST__INIT;
	Onecard__V1__Ping ping = ONECARD__V1__PING__INIT;
	Onecard__V1__Reply *reply = NULL;
	int code = -1;

	req.op_case = ONECARD__V1__REQUEST__OP_PING;
	req.ping = &ping;
	if (onecard_call(conn, &req, &reply) == ONECARD_OK) {
		code = reply->code;
		onecard_reply_free(reply);
	}
	return code;
}

int
harness_ping_as(struct harness *h, const char *cn)
{
	struct onecard_options opt;
	struct onecard_conn *conn;
	char err[512];
	int code;

	harness_options(h, cn, &opt);
	opt.connect_timeout_ms = 5000;
	opt.call_timeout_ms = 5000;
	if (onecard_connect(&opt, &conn, err, sizeof(err)) != ONECARD_OK)
		return -1;
	code = harness_ping(conn);
	onecard_close(conn);
	return code;
}

int
harness_tcp_connect(int port)
{
	return harness_tcp_connect_narrow(port, 0, 0);
}

int
harness_tcp_connect_narrow(int port, int rcvbuf, int mss)
{
	struct sockaddr_in sin;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	/* Before connect, so the SYN announces them. */
	if ((rcvbuf > 0 &&
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)) == -1) ||
	    (mss > 0 &&
		setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) ==
		    -1)) {
		close(fd);
		return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
harness_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int
harness_metrics_port(struct harness *h)
{
	static const char tag[] = "metrics on 127.0.0.1:";
	char log[65536];
	const char *p, *last = NULL;

	if (harness_log(h, log, sizeof(log)) == -1)
		return -1;
	/* The log grows over restarts: the latest start's line counts. */
	for (p = log; (p = strstr(p, tag)) != NULL; p++)
		last = p;
	return last != NULL ? atoi(last + strlen(tag)) : -1;
}

int
harness_http_get(int port, const char *path, char *body, size_t bodylen,
    char *ctype, size_t ctypelen)
{
	char req[256], *resp, *p;
	size_t cap = 1 << 20, len = 0;
	ssize_t n;
	int fd, status = -1;

	if ((resp = malloc(cap)) == NULL)
		return -1;
	if ((fd = harness_tcp_connect(port)) == -1)
		goto out;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
	    path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto out;
	while (len < cap - 1 && (n = read(fd, resp + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	resp[len] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	if (ctype != NULL && ctypelen > 0) {
		ctype[0] = '\0';
		if ((p = strcasestr(resp, "\r\nContent-Type: ")) != NULL) {
			p += strlen("\r\nContent-Type: ");
			snprintf(ctype, ctypelen, "%.*s",
			    (int)strcspn(p, "\r\n"), p);
		}
	}
	if (body != NULL && bodylen > 0) {
		p = strstr(resp, "\r\n\r\n");
		snprintf(body, bodylen, "%s", p != NULL ? p + 4 : "");
	}
out:
	if (fd != -1)
		close(fd);
	free(resp);
	return status;
}

double
harness_metric(const char *expo, const char *series)
{
	size_t sl = strlen(series);
	const char *p = expo;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == expo || p[-1] == '\n') && p[sl] == ' ')
			return strtod(p + sl + 1, NULL);
		p += sl;
	}
	return 0;
}
