// Package testexim runs Debian's Exim 4 privately for tests: the binary
// from $SIDECAR_EXIM, PATH or a private unpack of exim4-daemon-heavy
// (Exim and Postfix conflict as Debian packages), started as the test's
// own process in a mount namespace that gives it the Debian-exim user.
package testexim

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

//go:embed unpack.sh
var unpackScript string

// skip skips the test with a printed reason, or fails it under CI=true.
func skip(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	fmt.Println("SKIP:", msg)
	t.Skip(msg)
}

// Binary finds exim4: $SIDECAR_EXIM, then PATH, then a private unpack of
// Debian's exim4-daemon-heavy in the user's cache directory (made on
// first use with apt-get download and dpkg -x). It skips the test when
// none can be had (fails under CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "Exim test: needs root (a private mount namespace provides Exim's Debian-exim user)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		skip(t, "Exim test: no unshare")
	}
	if p := os.Getenv("SIDECAR_EXIM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("exim4"); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sidecar-exim")
	bin := filepath.Join(dir, "root/usr/sbin/exim4")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		skip(t, "Exim test: exim4 not found and no apt-get to unpack exim4-daemon-heavy")
	}
	out, err := exec.Command("sh", "-c", unpackScript, "unpack.sh", dir).CombinedOutput()
	if err != nil {
		skip(t, fmt.Sprintf("Exim test: cannot unpack exim4-daemon-heavy: %v\n%s", err, out))
	}
	return bin
}

// WriteUsers writes dir/passwd and dir/group: the machine's files with
// the Debian-exim user and group that Debian's build requires. Run
// bind-mounts them over /etc/passwd and /etc/group.
func WriteUsers(t testing.TB, dir string) {
	t.Helper()
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	if err := os.WriteFile(filepath.Join(dir, "passwd"), append(passwd, "Debian-exim:x:64321:64321::/nonexistent:/usr/sbin/nologin\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "group"), append(group, "Debian-exim:x:64321:\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// libraryDirs returns the directories under the unpack root's usr/lib
// that hold a .so file, parents before their subdirectories.
func libraryDirs(root string) []string {
	var dirs []string
	seen := map[string]bool{}
	filepath.WalkDir(filepath.Join(root, "usr/lib"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".so") && !seen[filepath.Dir(p)] {
			seen[filepath.Dir(p)] = true
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	return dirs
}

// unpackRoot returns the root of the private unpack bin is in, or "" for
// an installed exim4.
func unpackRoot(bin string) string {
	const tail = "/root/usr/sbin/exim4"
	if !strings.HasSuffix(bin, tail) {
		return ""
	}
	return strings.TrimSuffix(bin, "/usr/sbin/exim4")
}

// ExecPath is the exim_path of a configuration under which Exim
// delivers, for a test directory dir: Exim re-executes itself after it
// gave up root. Run bind-mounts a private unpack in the user's cache
// (which Exim's own user cannot reach under /root) on dir/exim-root.
func ExecPath(bin, dir string) string {
	if unpackRoot(bin) == "" {
		return bin
	}
	return filepath.Join(dir, "exim-root/usr/sbin/exim4")
}

// Run runs exim4 with dir/exim.conf and args, stdin on its standard
// input, and returns the combined output. It runs in a mount namespace
// whose /etc/passwd and /etc/group are those WriteUsers wrote in dir;
// for a private unpack, the binary is at ExecPath and the unpacked
// libraries are laid over the system's library directories (an
// overlay), since Exim re-executes itself with another effective user,
// when the loader ignores LD_LIBRARY_PATH (which serves the first
// process, and all of them where overlayfs is missing). Processes Exim leaves in the
// background (deliveries) keep the namespace.
func Run(t testing.TB, bin, dir, stdin string, args ...string) string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	mounts := []string{"mount --bind " + dir + "/passwd /etc/passwd", "mount --bind " + dir + "/group /etc/group"}
	var libs []string
	if root := unpackRoot(bin); root != "" {
		mnt := filepath.Join(dir, "exim-root")
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, "mount --bind "+root+" "+mnt)
		libs = libraryDirs(root)
		var laid []string
	dirs:
		for _, lib := range libs {
			for _, l := range laid {
				if strings.HasPrefix(lib, l+"/") {
					continue dirs
				}
			}
			laid = append(laid, lib)
			sys := strings.TrimPrefix(lib, root)
			if _, err := os.Stat(sys); err != nil {
				t.Fatalf("Exim test: no %s to lay the unpacked libraries over", sys)
			}
			mounts = append(mounts, fmt.Sprintf("{ mount -t overlay overlay -o lowerdir=%s:%s %s || true; }", lib, sys, sys))
		}
	}
	script := fmt.Sprintf("%s && exec %s -C %s/exim.conf %s", strings.Join(mounts, " && "), ExecPath(bin, dir), dir, strings.Join(quoted, " "))
	cmd := exec.Command("unshare", "-m", "sh", "-c", script)
	if libs != nil {
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+strings.Join(libs, ":"))
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	return string(out)
}
