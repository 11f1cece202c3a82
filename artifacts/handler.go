package artifacts

import (
	"errors"
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
	// Identify, if set, names the machine behind a request that carries no
	// valid ?mac= query parameter (a UEFI HTTP boot client fetching its
	// iPXE binary, for instance), from the client's address. It returns
	// nil when it does not know. It must be safe for concurrent use.
	Identify func(ip netip.Addr) net.HardwareAddr
	// OnServe, if set, is called after every request, for metrics. It runs
	// on the request's goroutine and must not block.
	OnServe func(Served)
}

// Served describes one request, for Handler.OnServe.
type Served struct {
	// Path is the file's name under Dir, or the request's URL path when
	// the request named no servable file.
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
	cw := &countingWriter{ResponseWriter: w}
	remote := remoteAddr(r)
	mac := h.identify(r, remote)
	name, ok := h.name(r.URL.Path)
	logPath := name
	if !ok {
		logPath = r.URL.Path
	}
	var err error
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		cw.Header().Set("Allow", "GET, HEAD")
		http.Error(cw, "method not allowed", http.StatusMethodNotAllowed)
	case !ok:
		http.NotFound(cw, r)
	default:
		err = h.serveFile(cw, r, name)
	}

	s := Served{Path: logPath, MAC: mac, Status: cw.status(), Bytes: cw.n, Duration: time.Since(start), Remote: remote}
	h.logServed(r, s, err)
	if h.OnServe != nil {
		h.OnServe(s)
	}
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
	http.ServeContent(w, r, path.Base(name), fi.ModTime(), f)
	return nil
}

// fileError answers a failed Stat or Open. What the client may not see or
// cannot have is 404; anything else is a storage failure and says so, 500,
// rather than pretend the file is missing.
func fileError(w http.ResponseWriter, r *http.Request, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.ELOOP), isEscape(err):
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
// which must be a clean, relative, non-empty path without NUL bytes. Every
// other path is refused before the file system is touched; os.Root then
// refuses symbolic links that lead out.
func (h *Handler) name(urlPath string) (string, bool) {
	prefix := h.Prefix
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rest, ok := strings.CutPrefix(urlPath, prefix)
	if !ok || rest == "" || strings.ContainsRune(rest, 0) || strings.HasPrefix(rest, "/") ||
		path.Clean(rest) != rest || rest == ".." || strings.HasPrefix(rest, "../") {
		return "", false
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

func (h *Handler) logServed(r *http.Request, s Served, err error) {
	log := h.Log
	if log == nil {
		return
	}
	attrs := []any{"path", truncate(s.Path), "status", s.Status, "bytes", s.Bytes,
		"duration", s.Duration, "ip", s.Remote.String()}
	if rg := r.Header.Get("Range"); rg != "" {
		attrs = append(attrs, "range", truncate(rg))
	}
	if s.MAC != nil {
		attrs = append(attrs, "mac", s.MAC.String())
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	level := slog.LevelInfo
	if s.Status >= 400 {
		level = slog.LevelWarn
	}
	if s.Status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "artifact request", attrs...)
}

func truncate(s string) string {
	if len(s) > maxLogged {
		return s[:maxLogged] + "..."
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
