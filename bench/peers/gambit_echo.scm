;; Line echo in Gambit Scheme, the seed's server as Gambit writes it: open-tcp-server, one
;; (green) thread per client, read-line / write-string / force-output.
;;
;; usage: gsi gambit_echo.scm [PORT | --port N] [--mode once|persistent]
;;        (or the executable from `gsc -exe`, same arguments)
;;   once:       read one line, echo it, close (the seed's server)
;;   persistent: echo every line until end of stream (the default)
;; Listens on 127.0.0.1; each line is echoed with "\n".

;; The usual declarations of compiled Gambit code: the standard procedures are not redefined
;; here, so gsc may inline them (gsi ignores this).
(declare (standard-bindings) (extended-bindings) (block))

(define (echo client once?)
  ;; A client that resets makes read-line or force-output raise: end its thread quietly, but
  ;; close the port either way so its descriptor is not leaked.
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
               (if (not once?) (loop))))))))
  (with-exception-catcher (lambda (e) #f) (lambda () (close-port client))))

(define (serve port-number once?)
  (let ((server (open-tcp-server
                 (list local-address: "127.0.0.1"
                       local-port-number: port-number
                       reuse-address: #t
                       ;; Byte-transparent text with "\n" line ends, like the other peers.
                       char-encoding: 'ISO-8859-1
                       eol-encoding: 'lf
                       ;; No Nagle delay on replies. Gambit 4.9.3 has this setting inverted
                       ;; (#t sets TCP_NODELAY on the listener, which accepted sockets inherit;
                       ;; #f sets nothing), and a line longer than the port's 1 KiB buffer goes
                       ;; out in two writes that Nagle holds for the client's delayed ACK: 40 ms.
                       coalesce: #t))))
    (display "127.0.0.1:") (display port-number) (newline) (force-output)
    (let loop ()
      (let ((client (read server)))
        (thread-start! (make-thread (lambda () (echo client once?))))
        (loop)))))

(define (usage)
  (display "usage: gambit_echo [PORT | --port N] [--mode once|persistent]\n" (current-error-port))
  (exit 2))

(define (parse-arguments args port once?)
  (cond ((null? args) (serve port once?))
        ((and (string=? (car args) "--port") (pair? (cdr args)) (string->number (cadr args)))
         (parse-arguments (cddr args) (string->number (cadr args)) once?))
        ((and (string=? (car args) "--mode") (pair? (cdr args))
              (member (cadr args) '("once" "persistent")))
         (parse-arguments (cddr args) port (string=? (cadr args) "once")))
        ((string->number (car args))
         (parse-arguments (cdr args) (string->number (car args)) once?))
        (else (usage))))

(parse-arguments (cdr (command-line)) 2020 #f)
