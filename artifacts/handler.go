package artifacts

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// Handler serves the files under Dir at the URL path Prefix. Its fields are
// read-only once it serves; it is safe for concurrent use.
type Handler struct {
	// Dir is the directory served. It is opened as an os.Root for every
	// request, so it may be replaced (a new release unpacked beside it and
	// renamed into place) while the appliance runs.
	Dir string
	// Prefix is the URL path the handler is mounted at, such as
	// "/artifacts/"; it is removed from request paths to find the file,
	// and paths outside it are 404. Empty means "/".
	Prefix string
	// Log receives one line per request. Nil discards.
	Log *slog.Logger
	// QuietDir names a directory under Dir (such as "chunks") whose files
	// are logged at Debug rather than Info when served without error:
	// the chunks of a chunked image, of which one install fetches tens of
	// thousands. Errors are logged as for any file, and OnServe sees every
	// request. Empty: none.
	QuietDir string
	// ChunkStore names the chunk store's directory under Dir (such as
	// "chunks"): a GET of that directory with ?ids=ID,ID,… (at most
	// agentapi.MaxChunkBatch ids of 64 hex digits) answers the files
	// ID[:4]/ID.zst one after the other, in that order, or 404 when any
	// is missing: one request instead of tens for an installer fetching
	// its chunks. Empty: no such requests.
	ChunkStore string
	// Identify, if set, names the machine behind a request that carries no
	// valid ?mac= query parameter (a UEFI HTTP boot client fetching its
	// iPXE binary, for instance), from the client's address. It returns
	// nil when it does not know. It must be safe for concurrent use.
	Identify func(ip netip.Addr) net.HardwareAddr
	// Redirect, if set, may send a GET elsewhere: it is asked before the
	// file is opened, with the file's name under Dir and the machine
	// behind the request (nil when unknown), and returns the URL to
	// answer with a 307 (Cache-Control: no-store), or false to serve the
	// file. Peer distribution sends chunk requests to installing peers
	// with it (docs/DESIGN.md, "Peer distribution"). It must be safe for
	// concurrent use and must not block.
	Redirect func(r *http.Request, name string, mac net.HardwareAddr) (string, bool)
	// OnServe, if set, is called after every request, for metrics. It runs
	// on the request's goroutine and must not block.
	OnServe func(Served)
	// StallTimeout is how long one write of a response body may wait for
	// the client to take it; default DefaultStallTimeout. Every chunk of a
	// download (at most 1 MiB) gets a fresh write deadline, so a transfer
	// that takes minutes (an OS image) is not cut by the server's
	// WriteTimeout, while a client that stops reading is dropped, and its
	// file closed, one StallTimeout after its socket buffers filled.
	StallTimeout time.Duration
}

// DefaultStallTimeout is Handler.StallTimeout's default: long enough for an
// installer agent whose disk pauses under a large write-back, short enough
// that a client that left without closing frees its descriptors soon. The
// agent resumes a cut download with Range.
const DefaultStallTimeout = 60 * time.Second

// Request limits. A file name under the root longer than maxName, or with
// an element longer than NAME_MAX, cannot exist: it is answered without a
// system call (414 or 404), and never reaches a log at full length.
const (
	maxName        = 1024
	maxNameElement = 255
)

// Served describes one request, for Handler.OnServe.
type Served struct {
	// Path is the file's name under Dir, or the request's URL path when
	// the request named no servable file; beyond 256 bytes, its first 256
	// and its length.
	Path string
	// MAC is the machine that asked, nil when unknown.
	MAC net.HardwareAddr
	// Status is the HTTP status code sent.
	Status int
	// Bytes is how many body bytes were sent.
	Bytes int64
	// Duration is the time from the request to the end of the response.
	Duration time.Duration
	// Remote is the client's IP address.
	Remote netip.Addr
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	stall := h.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	cw := &countingWriter{ResponseWriter: w, stall: stall, rc: http.NewResponseController(w)}
	// A download outlives the server's ReadTimeout, whose expiry would
	// cancel the request's context; the write deadlines of cw watch the
	// client instead. (GET and HEAD have no body to read.)
	_ = cw.rc.SetReadDeadline(time.Time{})
	remote := remoteAddr(r)
	mac := h.identify(r, remote)
	name, ok := h.name(r.URL.Path)
	logPath := name
	if !ok {
		logPath = r.URL.Path
	}
	logPath = truncate(logPath) // for the log and OnServe
	var err error
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		cw.Header().Set("Allow", "GET, HEAD")
		http.Error(cw, "method not allowed", http.StatusMethodNotAllowed)
	case !ok && len(r.URL.Path) > len(h.Prefix)+maxName:
		http.Error(cw, "URI too long", http.StatusRequestURITooLong)
	case !ok:
		http.NotFound(cw, r)
	case h.ChunkStore != "" && name == strings.TrimSuffix(h.ChunkStore, "/") && r.URL.Query().Has("ids"):
		err = h.serveChunks(cw, r, name, r.URL.Query().Get("ids"))
	default:
		if u, ok := h.redirect(r, name, mac); ok {
			cw.Header().Set("Cache-Control", "no-store")
			http.Redirect(cw, r, u, http.StatusTemporaryRedirect)
			break
		}
		err = h.serveFile(cw, r, name)
	}

	s := Served{Path: logPath, MAC: mac, Status: cw.status(), Bytes: cw.n, Duration: time.Since(start), Remote: remote}
	h.logServed(r, s, ok && h.quiet(name), err)
	if h.OnServe != nil {
		h.OnServe(s)
	}
}

// redirect asks Redirect about a GET.
func (h *Handler) redirect(r *http.Request, name string, mac net.HardwareAddr) (string, bool) {
	if h.Redirect == nil || r.Method != http.MethodGet {
		return "", false
	}
	return h.Redirect(r, name, mac)
}

// serveFile serves name, a clean relative path, from Dir. The error it
// returns is for the log: the response has been written.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, name string) error {
	root, err := os.OpenRoot(h.Dir)
	if err != nil {
		http.Error(w, "artifacts directory unavailable", http.StatusInternalServerError)
		return err
	}
	defer root.Close()

	// Stat before opening: opening a FIFO or device would block or have
	// side effects. The open file is checked again below, against a swap
	// in between.
	fi, err := root.Stat(name)
	if err != nil {
		return fileError(w, r, err)
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return errors.New("not a regular file")
	}
	f, err := root.Open(name)
	if err != nil {
		return fileError(w, r, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		http.Error(w, "cannot read file", http.StatusInternalServerError)
		return err
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return errors.New("not a regular file")
	}

	hd := w.Header()
	// ServeContent honours If-None-Match, If-Match and If-Range against
	// this header, so it is set first. A strong validator is needed for
	// If-Range, which lets a client resume a half-fetched image.
	hd.Set("ETag", etag(fi))
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	// Set explicitly so ServeContent does not sniff the first bytes.
	hd.Set("Content-Type", ct)
	hd.Set("X-Content-Type-Options", "nosniff")
	if rg := r.Header.Get("Range"); rg != "" && !rangesAcceptable(rg, fi.Size()) {
		hd.Set("Content-Range", fmt.Sprintf("bytes */%d", fi.Size()))
		http.Error(w, "too many or overlapping ranges", http.StatusRequestedRangeNotSatisfiable)
		return errors.New("too many or overlapping ranges")
	}
	http.ServeContent(w, r, path.Base(name), fi.ModTime(), f)
	return nil
}

// fileError answers a failed Stat or Open. What the client may not see or
// cannot have is 404; anything else is a storage failure and says so, 500,
// rather than pretend the file is missing.
func fileError(w http.ResponseWriter, r *http.Request, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENAMETOOLONG), isEscape(err):
		http.NotFound(w, r)
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "forbidden", http.StatusForbidden)
	default:
		http.Error(w, "cannot read file", http.StatusInternalServerError)
	}
	return err
}

// isEscape reports whether err is os.Root refusing a path that leaves the
// root through a symbolic link. The os package exports no sentinel for it
// (Go 1.26), so the message is matched; TestEscapes notices if it changes.
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

// name maps a URL path to a file name under Dir: the path after Prefix,
// which must be a clean, relative, non-empty path without NUL bytes, and
// not "." (the root itself, which FuzzName found accepted). Every other
// path is refused before the file system is touched; os.Root then refuses
// symbolic links that lead out.
func (h *Handler) name(urlPath string) (string, bool) {
	prefix := h.Prefix
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rest, ok := strings.CutPrefix(urlPath, prefix)
	if !ok || rest == "" || rest == "." || len(rest) > maxName || strings.ContainsRune(rest, 0) || strings.HasPrefix(rest, "/") ||
		path.Clean(rest) != rest || rest == ".." || strings.HasPrefix(rest, "../") {
		return "", false
	}
	for elem := range strings.SplitSeq(rest, "/") {
		if len(elem) > maxNameElement {
			return "", false
		}
	}
	return rest, true
}

// identify is the machine behind r: the ?mac= that iPXE scripts append to
// artifact URLs (iPXE sends no MAC of its own), else whatever Identify
// knows about the client's address.
func (h *Handler) identify(r *http.Request, remote netip.Addr) net.HardwareAddr {
	if v := r.URL.Query().Get("mac"); v != "" {
		// Only a valid 48-bit address is logged: the query is the
		// client's to write.
		if hw, err := net.ParseMAC(v); err == nil && len(hw) == 6 {
			return hw
		}
	}
	if h.Identify != nil && remote.IsValid() {
		return h.Identify(remote)
	}
	return nil
}

// maxLogged bounds client-controlled text (paths, Range headers) in logs.
const maxLogged = 256

// quiet reports whether name is under QuietDir.
func (h *Handler) quiet(name string) bool {
	dir := strings.TrimSuffix(h.QuietDir, "/")
	return h.QuietDir != "" && (name == dir || strings.HasPrefix(name, dir+"/"))
}

func (h *Handler) logServed(r *http.Request, s Served, quiet bool, err error) {
	log := h.Log
	if log == nil {
		return
	}
	attrs := []any{"path", s.Path, "status", s.Status, "bytes", s.Bytes,
		"duration", s.Duration, "ip", s.Remote.String()}
	if rg := r.Header.Get("Range"); rg != "" {
		attrs = append(attrs, "range", truncate(rg))
	}
	if s.MAC != nil {
		attrs = append(attrs, "mac", s.MAC.String())
	}
	if err != nil {
		// A file system error quotes the name it was given.
		attrs = append(attrs, "err", truncate(err.Error()))
	}
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelDebug
	}
	if s.Status >= 400 {
		level = slog.LevelWarn
	}
	if s.Status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "artifact request", attrs...)
}

// truncate bounds s for a log line: a longer s becomes its first maxLogged
// bytes and its length (slog quotes it), so the line stays short and still
// says how long the client's text was.
func truncate(s string) string {
	if len(s) > maxLogged {
		return fmt.Sprintf("%s... (%d bytes)", s[:maxLogged], len(s))
	}
	return s
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
