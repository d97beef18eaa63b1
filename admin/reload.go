package admin

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// reloadTimeout bounds one reload: re-reading a file and swapping pools
// takes milliseconds; a hook stuck longer should not hold the request.
const reloadTimeout = 30 * time.Second

// POST /reload re-reads the configuration through the Reload hook. Until
// wsgate has a configuration file there is nothing to re-read: 409.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Reload == nil {
		writeError(w, http.StatusConflict, "", ErrNoConfigFile.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reloadTimeout)
	defer cancel()
	if err := s.cfg.Reload(ctx); err != nil {
		code := http.StatusBadRequest // the new configuration was refused
		if errors.Is(err, ErrNoConfigFile) {
			code = http.StatusConflict
		}
		writeError(w, code, "", "reload: "+err.Error())
		return
	}
	s.log.Info("configuration reloaded")
	writeJSON(w, http.StatusOK, map[string]bool{"reloaded": true})
}
