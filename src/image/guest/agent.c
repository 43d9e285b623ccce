/*
 * repro's guest agent: runs the host's commands much as SSH would (`sh -c COMMAND` as root in
 * /root, stdin from the request, stdout and stderr streamed back apart, then the exit status),
 * over the virtio-serial port `org.repro.agent`. Its channel is QEMU's, not the guest's: there
 * is no handshake after boot, and a guest restored from a snapshot (taken while the agent
 * waited) answers at once.
 *
 * Frames, both ways: kind (1 byte), id (u32, little-endian), length (u32), payload.
 *   host -> guest  'X' run: u32 command length, the command, then its stdin
 *                  'A' run without a shell: u32 length, NUL-ended words, then its stdin; the
 *                      leading NAME=VALUE words join the environment, the next word is the
 *                      program (looked up in PATH), the rest its arguments
 *                  'W' write, then run without a shell: as 'A', but the first word is a path;
 *                      the stdin is written there (mode 755, its directory made if missing)
 *                      and the rest of the words run with an empty stdin. A file that cannot
 *                      be written ends the command with status 97, the last line of its stderr
 *                      WRITE_FAILED (repro's guest::WRITE_FAILED)
 *   guest -> host  'H' hello (id 0; payload: a version line), sent when the agent starts
 *                  'O' stdout, 'E' stderr: a chunk of the command's output
 *                  'S' status (i32: the exit code, or 128 + the signal that ended it)
 *                  'F' the command could not be started (payload: why)
 * The shell is /bin/sh, not root's login shell: repro's own command lines are POSIX, and they
 * run scripts under the shell the scenario names; bash's start costs 60 ms more under TCG.
 * A command's status comes when its shell has exited, after everything it wrote to its output
 * before that: a daemon it left behind cannot hold the command open.
 *
 * Built static by repro for each image (gcc, or the arch's cross gcc). `agent FD` serves an
 * inherited descriptor instead of the port (repro's tests run it on the host that way).
 * `repro.noagent` on the kernel command line keeps it down (the guest then starts sshd).
 *
 * Two agents start in each boot. The bring-up (rc.sh) starts `agent hold` early, on the CPU it
 * leaves idle: it opens the port and holds its hello until the bring-up has created UP_FILE.
 * init starts the other once the bring-up is over, and respawns it; it waits on LOCK_FILE,
 * which the agent serving the port holds, so it takes over only if the first one ends. The
 * early one says it holds the lock in HELD_FILE, which the bring-up waits for before it ends:
 * its exec (the binary read from disk) could otherwise lose the lock to init's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_NAME "org.repro.agent"
#define VERSION "repro-agent 1\n"
#define MAX_CHILDREN 128
#define MAX_REQUEST (512u << 20)
#define CHUNK 65536
#define HEADER 9
#define WRITE_FAILED "repro: cannot write the file to run"
#define WRITE_FAILED_STATUS 97
#define LOCK_FILE "/run/repro/agent.lock"
#define HELD_FILE "/run/repro/agent.held"
#define UP_DIR "/run/repro"
#define UP_FILE UP_DIR "/up"

enum how { SHELL, WORDS, WRITE_THEN_WORDS };

struct child {
    pid_t pid; /* 0: a free slot */
    uint32_t id;
    int pidfd;
    int out, err; /* -1 once at end of file */
};

static struct child kids[MAX_CHILDREN];
static int port = -1;

static void die(const char *what)
{
    fprintf(stderr, "repro-agent: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = v;
    b[1] = v >> 8;
    b[2] = v >> 16;
    b[3] = v >> 24;
}

static uint32_t get32(const unsigned char *b)
{
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void write_all(const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(port, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = port, .events = POLLOUT};
            poll(&pfd, 1, 100);
            continue;
        }
        if (w <= 0)
            die("writing to the host");
        p += w;
        n -= (size_t)w;
    }
}

/* Sends a frame whose payload is already at buf + HEADER. */
static void send_framed(unsigned char *buf, char kind, uint32_t id, uint32_t len)
{
    buf[0] = (unsigned char)kind;
    put32(buf + 1, id);
    put32(buf + 5, len);
    write_all(buf, HEADER + (size_t)len);
}

static void send_frame(char kind, uint32_t id, const void *data, uint32_t len)
{
    unsigned char *buf = malloc(HEADER + (size_t)len);
    if (!buf)
        die("out of memory");
    memcpy(buf + HEADER, data, len);
    send_framed(buf, kind, id, len);
    free(buf);
}

static void refuse(uint32_t id, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s%s%s", why, errno ? ": " : "", errno ? strerror(errno) : "");
    send_frame('F', id, msg, (uint32_t)strlen(msg));
}

/* The port named PORT_NAME, once its driver has bound (a few seconds at most after boot). */
static int open_port(void)
{
    for (int tries = 0; tries < 500; tries++) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[512], name[64] = {0};
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, name, sizeof name - 1);
            close(fd);
            if (n > 0 && name[n - 1] == '\n')
                name[n - 1] = 0;
            if (strcmp(name, PORT_NAME) != 0)
                continue;
            snprintf(path, sizeof path, "/dev/%s", e->d_name);
            int p = open(path, O_RDWR | O_CLOEXEC);
            if (p >= 0) {
                closedir(d);
                return p;
            }
        }
        if (d)
            closedir(d);
        usleep(20000);
    }
    return -1;
}

/* In the child: runs the words of an 'A' request (see the header). */
static void exec_words(char *words, size_t len)
{
    size_t n = 0;
    for (size_t at = 0; at < len; at += strlen(words + at) + 1)
        n++;
    char **argv = calloc(n + 1, sizeof *argv);
    if (!argv)
        _exit(126);
    size_t argc = 0;
    for (size_t at = 0; at < len; at += strlen(words + at) + 1) {
        char *w = words + at;
        if (argc == 0 && w[0] != '=' && strchr(w, '='))
            putenv(w);
        else
            argv[argc++] = w;
    }
    if (argc == 0) {
        fputs("repro-agent: no program in the request\n", stderr);
        _exit(127);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "repro-agent: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

/* Copies fd 0 to `path`, mode 755; 0 or an errno. */
static int copy_stdin(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0 && errno == ENOENT) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            mkdir(dir, 0755);
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        }
    }
    if (fd < 0 || fchmod(fd, 0755) < 0)
        return errno;
    static char buf[CHUNK];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(fd, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return w < 0 ? errno : EIO;
            done += w;
        }
    }
    return close(fd) < 0 ? errno : 0;
}

/* In the child: writes stdin to a 'W' request's path, then runs the rest of its words. */
static void write_then_exec(char *words, size_t len)
{
    size_t plen = strnlen(words, len) + 1;
    int err = plen > len ? EINVAL : copy_stdin(words);
    if (err) {
        fprintf(stderr, "repro-agent: cannot write %s: %s\n%s\n", words, strerror(err), WRITE_FAILED);
        _exit(WRITE_FAILED_STATUS);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0)
        _exit(126);
    close(null);
    exec_words(words + plen, len - plen);
}

/* Starts `command` (a shell line, or a 'W' or 'A' request's words) with `input` on its stdin;
 * its slot, or a refusal sent to the host. */
static void start(uint32_t id, const unsigned char *p, uint32_t len, enum how how)
{
    errno = 0;
    if (len < 4 || get32(p) > len - 4) {
        refuse(id, "malformed request");
        return;
    }
    uint32_t clen = get32(p);
    /* Ended by a NUL past its length: the last word of an 'A' request needs none of its own. */
    char *command = calloc(1, (size_t)clen + 1);
    if (command)
        memcpy(command, p + 4, clen);
    const unsigned char *input = p + 4 + clen;
    size_t ilen = len - 4 - clen;
    struct child *k = NULL;
    for (int i = 0; i < MAX_CHILDREN && !k; i++)
        if (kids[i].pid == 0)
            k = &kids[i];
    if (!k || !command) {
        refuse(id, "too many commands at once");
        free(command);
        return;
    }
    int in = memfd_create("stdin", MFD_CLOEXEC), out[2], err[2];
    if (in < 0) {
        refuse(id, "memfd_create");
        free(command);
        return;
    }
    for (size_t done = 0; done < ilen;) {
        ssize_t w = write(in, input + done, ilen - done);
        if (w <= 0) {
            refuse(id, "writing stdin");
            close(in);
            free(command);
            return;
        }
        done += (size_t)w;
    }
    lseek(in, 0, SEEK_SET);
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        refuse(id, "pipe");
        close(in);
        free(command);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* As init leaves them: a shell's background job (`agent hold`) inherits SIGINT and
         * SIGQUIT ignored, and the agent ignores SIGPIPE. */
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        setsid();
        dup2(in, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        clearenv();
        setenv("HOME", "/root", 1);
        setenv("USER", "root", 1);
        setenv("LOGNAME", "root", 1);
        setenv("SHELL", "/bin/sh", 1);
        setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
        if (chdir("/root") < 0 && chdir("/") < 0)
            _exit(126);
        if (how == WRITE_THEN_WORDS)
            write_then_exec(command, clen);
        if (how == WORDS)
            exec_words(command, clen);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(in);
    close(out[1]);
    close(err[1]);
    free(command);
    if (pid < 0) {
        refuse(id, "fork");
        close(out[0]);
        close(err[0]);
        return;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    *k = (struct child){.pid = pid, .id = id, .out = out[0], .err = err[0]};
    k->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Forwards what `*fd` has now; closes it at end of file. */
static void forward(uint32_t id, int *fd, char kind)
{
    static unsigned char buf[HEADER + CHUNK];
    for (;;) {
        ssize_t n = read(*fd, buf + HEADER, CHUNK);
        if (n > 0) {
            send_framed(buf, kind, id, (uint32_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno != EAGAIN) {
            close(*fd);
            *fd = -1;
        }
        return;
    }
}

/* The child has exited: what its output holds now, then its status. */
static void finish(struct child *k, int wstatus)
{
    int32_t code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    unsigned char b[4];
    if (k->out >= 0)
        forward(k->id, &k->out, 'O');
    if (k->err >= 0)
        forward(k->id, &k->err, 'E');
    if (k->out >= 0)
        close(k->out);
    if (k->err >= 0)
        close(k->err);
    if (k->pidfd >= 0)
        close(k->pidfd);
    put32(b, (uint32_t)code);
    send_frame('S', k->id, b, 4);
    k->pid = 0;
}

/* Reaps children that have exited (pidfd said so, or polling without pidfds). */
static void reap(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        int wstatus;
        if (kids[i].pid > 0 && waitpid(kids[i].pid, &wstatus, WNOHANG) == kids[i].pid)
            finish(&kids[i], wstatus);
    }
}

/* Takes the complete requests at the front of buf; gives how many bytes they used. */
static size_t requests(unsigned char *buf, size_t have)
{
    size_t used = 0;
    while (have - used >= HEADER) {
        const unsigned char *h = buf + used;
        uint32_t len = get32(h + 5);
        if (len > MAX_REQUEST) {
            fprintf(stderr, "repro-agent: a request of %u bytes: not repro's\n", len);
            exit(2);
        }
        if (have - used < HEADER + (size_t)len)
            break;
        if (h[0] == 'X' || h[0] == 'A' || h[0] == 'W')
            start(get32(h + 1), h + HEADER, len, h[0] == 'X' ? SHELL : h[0] == 'A' ? WORDS : WRITE_THEN_WORDS);
        else
            refuse(get32(h + 1), "not a kind of request this agent knows");
        used += HEADER + len;
    }
    return used;
}

/* Whether the kernel command line holds `word` (as a whole word). */
static int on_cmdline(const char *word)
{
    char line[4096] = " ";
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? 0 : read(fd, line + 1, sizeof line - 3);
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 1; i <= n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    if (n > 0)
        strcat(line, " ");
    char want[128];
    snprintf(want, sizeof want, " %s ", word);
    return strstr(line, want) != NULL;
}

/* Waits until only this agent serves the port: the lock is free once any other has ended. */
static void take_lock(void)
{
    int fd = open(LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (fd >= 0 && flock(fd, LOCK_EX) < 0 && errno == EINTR)
        ;
}

/* `agent hold`: until the bring-up has created UP_FILE. */
static void await_bring_up(void)
{
    int in = inotify_init1(IN_CLOEXEC);
    if (in >= 0 && inotify_add_watch(in, UP_DIR, IN_CREATE | IN_MOVED_TO) < 0) {
        close(in);
        in = -1;
    }
    while (access(UP_FILE, F_OK) != 0) {
        char events[4096];
        if (in < 0 || (read(in, events, sizeof events) < 0 && errno != EINTR))
            usleep(10000); /* no inotify: look again */
    }
    if (in >= 0)
        close(in);
}

int main(int argc, char **argv)
{
    int hold = argc > 1 && strcmp(argv[1], "hold") == 0;
    if (hold)
        setsid(); /* the bring-up's session ends with it */
    if (argc > 1 && !hold) {
        port = atoi(argv[1]);
        fcntl(port, F_SETFD, FD_CLOEXEC); /* the commands must not hold the channel */
    } else if (!on_cmdline("repro.noagent")) {
        take_lock();
        if (hold)
            close(open(HELD_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        port = open_port();
    }
    if (port < 0) {
        if ((argc == 1 || hold) && !on_cmdline("repro.noagent"))
            fprintf(stderr, "repro-agent: no virtio port named %s\n", PORT_NAME);
        for (;;)
            pause(); /* not respawned in a loop by init */
    }
    signal(SIGPIPE, SIG_IGN);
    if (hold)
        await_bring_up();
    send_frame('H', 0, VERSION, (uint32_t)strlen(VERSION));
    size_t cap = 1 << 16, have = 0;
    unsigned char *buf = malloc(cap);
    if (!buf)
        die("out of memory");
    for (;;) {
        struct pollfd fds[1 + 3 * MAX_CHILDREN];
        int who[1 + 3 * MAX_CHILDREN], n = 1;
        int polled = 1; /* every child has a pidfd: nothing needs a timeout */
        fds[0] = (struct pollfd){.fd = port, .events = POLLIN};
        for (int i = 0; i < MAX_CHILDREN; i++) {
            struct child *k = &kids[i];
            if (k->pid == 0)
                continue;
            int fdv[3] = {k->out, k->err, k->pidfd};
            for (int j = 0; j < 3; j++) {
                if (fdv[j] < 0)
                    continue;
                fds[n] = (struct pollfd){.fd = fdv[j], .events = POLLIN};
                who[n++] = i * 3 + j;
            }
            if (k->pidfd < 0)
                polled = 0;
        }
        if (poll(fds, (nfds_t)n, polled ? -1 : 50) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int f = 1; f < n; f++) {
            if (!fds[f].revents)
                continue;
            struct child *k = &kids[who[f] / 3];
            if (who[f] % 3 == 0 && k->out >= 0)
                forward(k->id, &k->out, 'O');
            else if (who[f] % 3 == 1 && k->err >= 0)
                forward(k->id, &k->err, 'E');
        }
        reap();
        if (fds[0].revents & POLLIN) {
            if (have == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
                if (!buf)
                    die("out of memory");
            }
            ssize_t r = read(port, buf + have, cap - have);
            if (r < 0 && errno != EINTR && errno != EAGAIN)
                die("reading from the host");
            if (r == 0)
                usleep(50000); /* no host on the other end yet */
            if (r > 0) {
                have += (size_t)r;
                size_t used = requests(buf, have);
                memmove(buf, buf + used, have - used);
                have -= used;
            }
        } else if (fds[0].revents & (POLLHUP | POLLERR)) {
            usleep(50000);
        }
    }
}
