;; The seed's echo server in Gambit Scheme (the reference's runtime), one server per transcoder,
;; for tests/tools/test_gambit_differential.cpp.
;;
;; usage: gsi gambit_transcoding_echo.scm
;;   Reads commands on stdin, one per line:  CODEC EOL ERRORS
;;     CODEC   a Gambit char-encoding (UTF-8, UTF-16LE, UTF-fallback-ISO-8859-1, ...)
;;     EOL     a Gambit eol-encoding: lf, cr or cr-lf (Gambit has no "none")
;;     ERRORS  raise or replace (char-encoding-errors #t or #f; Gambit has no "ignore")
;;   For each, opens a server on 127.0.0.1, port 0, with those settings (Slogan's transcoder
;;   maps to exactly these open-tcp-server settings), prints its port on a line of stdout, and
;;   serves it as `rill echo --mode persistent` does: every line read is written back followed
;;   by a newline and flushed, until end of stream; an error (a decoding error under raise)
;;   ends that connection. Exits at end of stdin.

(define (echo client)
  (with-exception-catcher
   (lambda (e) #f)
   (lambda ()
     (let loop ()
       (let ((line (read-line client)))
         (if (not (eof-object? line))
             (begin
               (write-string line client)
               (newline client)
               (force-output client)
               (loop)))))))
  (with-exception-catcher (lambda (e) #f) (lambda () (close-port client))))

(define (open-echo-server codec eol raise?)
  (let* ((server (open-tcp-server
                  (list local-address: "127.0.0.1"
                        local-port-number: 0
                        reuse-address: #t
                        char-encoding: codec
                        eol-encoding: eol
                        char-encoding-errors: raise?)))
         (port-number (socket-info-port-number (tcp-server-socket-info server))))
    (thread-start!
     (make-thread
      (lambda ()
        (let loop ()
          (let ((client (read server)))
            (thread-start! (make-thread (lambda () (echo client))))
            (loop))))))
    port-number))

(let loop ()
  (let ((command (read-line)))
    (if (not (eof-object? command))
        (let* ((words (open-input-string command))
               (codec (read words))
               (eol (read words))
               (errors (read words)))
          ;; A setting Gambit refuses is reported on the port's line instead of ending the loop.
          (display (with-exception-catcher
                    (lambda (e) "error")
                    (lambda () (open-echo-server codec eol (eq? errors 'raise)))))
          (newline)
          (force-output)
          (loop)))))
