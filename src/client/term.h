/* term: the line client on a terminal. When stdin and stdout are both
 * terminals the client reads through libedit (line editing, input history
 * kept in HOME/history, Tab completion of commands and nicks) and every line
 * it prints goes above the input line: the half-typed line is erased,
 * the output printed, and the prompt and input redrawn, so nothing the
 * person is typing gets garbled. Output to a terminal is coloured unless
 * NO_COLOR is set (no-color.org); output to anything else never is.
 *
 * libedit's terminal state is process-wide, so there is one terminal per
 * process: the functions below work on it. The pure parts (colouring,
 * completion) take everything as arguments so tests can hit them directly.
 * docs/guide.md describes what the person sees. */
#ifndef KITH_TERM_H
#define KITH_TERM_H

#include <stdbool.h>
#include <stddef.h>

/* Longest history kept (lines), in memory and in HOME/history. */
#define KITH_TERM_HISTORY_MAX 500

/* ---- pure ---- */

/* Whether to colour: stdout is a terminal, NO_COLOR (the value of the
 * environment variable, NULL when unset) is unset or empty, and TERM
 * (NULL when unset) is not "dumb". */
bool kith_term_color_wanted(bool stdout_tty, const char *no_color, const char *term);

/* One output line of the client (the formats of docs/guide.md) with ANSI
 * colours added: the time dim, a nick in a colour that is the same for the
 * same nick every time, system lines ("* ...") dim, errors ("! ...") bold
 * red. The line's own text is copied unchanged (it was sanitized before).
 * Returns the length written (out NUL-terminated; truncated to cap). */
size_t kith_term_colorize(const char *line, size_t len, char *out, size_t cap);

/* The nick a message line (as above) names, copied into out; 0 (out "")
 * for other lines or a nick that does not fit. */
size_t kith_term_line_nick(const char *line, size_t len, char *out, size_t cap);

/* Candidate nicks for completion: the i-th one, NULL past the last. */
typedef const char *(*kith_term_nick_fn)(void *ud, size_t i);

/* Tab completion of the word that ends at the cursor: before is the line
 * up to the cursor (before_len bytes). A "/word" at the start of the line
 * completes against the command names (names, NULL-terminated, without
 * '/'); any other word against the nicks, with ": " after a nick that
 * starts the line and " " elsewhere. Writes the text to insert at the
 * cursor into insert (NUL-terminated; empty when there is nothing to add)
 * and returns the number of candidates that matched; with several, list
 * (when not NULL) gets them separated by two spaces. */
size_t kith_term_complete(const char *before, size_t before_len, const char *const *names,
    kith_term_nick_fn nicks, void *ud, char *insert, size_t insert_cap, char *list,
    size_t list_cap);

/* Whether a typed line is kept in the history file: commands are, but
 * not messages, actions, edits, reactions, topics or invite codes (the home holds no
 * readable chat). The session's own history (Up, Down) has every line. */
bool kith_term_history_keeps(const char *line, size_t len);

/* ---- the process's terminal ---- */

/* Both stdin and stdout are terminals (and TERM is not "dumb"). */
bool kith_term_usable(void);

typedef struct kith_term_hooks {
    void *ud;
    /* A finished line (no newline; NUL-terminated), or line NULL at end of
     * input (Ctrl-D on an empty line). */
    void (*line)(void *ud, const char *line, size_t len);
    /* Nicks to complete (may be NULL). */
    kith_term_nick_fn nick;
    /* Writes the prompt (may be NULL: "> "). Asked again before every
     * redraw, so it can follow the current room. */
    void (*prompt)(void *ud, char *out, size_t cap);
} kith_term_hooks;

/* Take over the terminal: raw mode, prompt shown. history_path (may be
 * NULL) is loaded now and saved (mode 0600, see kith_term_history_keeps) by
 * kith_term_stop. Returns 0, or
 * -1 when libedit could not set up the terminal (the caller reads plain
 * lines then). */
int kith_term_start(const kith_term_hooks *hooks, const char *history_path);
/* stdin is readable: let libedit take what is there (may call hooks->line). */
void kith_term_read(void);
/* The process was stopped (Ctrl-Z) and continued: the shell has put the
 * terminal back in its own modes meanwhile. Takes it again and redraws the
 * prompt and the input (call on SIGCONT). */
void kith_term_continued(void);
/* Give the terminal back as it was and save the history. Safe to call
 * twice, and when kith_term_start was never called. */
void kith_term_stop(void);
bool kith_term_active(void);

/* Print one or more '\n'-separated lines on stdout: above the input line
 * while the terminal is taken, coloured when kith_term_color_wanted says so
 * for this process. Flushed. Every line the client shows goes through here. */
void kith_term_print(const char *text);

#endif
