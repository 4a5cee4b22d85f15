package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestErrWithoutDone(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 20*time.Millisecond {
		t.Fatalf("Deadline %v %v", dl, ok)
	}
	time.Sleep(30 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline: %v", err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline and cancel: %v", err)
	}
}

func TestDoneClosesAtDeadline(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("Done never closed")
	}
	if time.Since(start) < 10*time.Millisecond {
		t.Fatal("Done closed before the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("Err %v Cause %v", ctx.Err(), context.Cause(ctx))
	}
}

func TestCancel(t *testing.T) {
	for _, waited := range []bool{false, true} {
		ctx, cancel := WithTimeout(context.Background(), time.Hour)
		if waited {
			_ = ctx.Done()
		}
		child, stop := context.WithCancel(ctx)
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("waited=%v: Err after cancel: %v", waited, ctx.Err())
		}
		select {
		case <-ctx.Done():
		default:
			t.Errorf("waited=%v: Done open after cancel", waited)
		}
		select {
		case <-child.Done():
		case <-time.After(time.Second):
			t.Errorf("waited=%v: a child did not see the cancel", waited)
		}
		stop()
	}
}

func TestParent(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := WithTimeout(parent, time.Hour)
	defer cancel()
	cancelParent()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err after the parent's cancel: %v", ctx.Err())
	}
	<-ctx.Done()

	short, cancelShort := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelShort()
	ctx, cancel = WithTimeout(short, time.Hour)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Millisecond {
		t.Fatalf("the parent's earlier deadline not kept: %v", dl)
	}
	type key struct{}
	vctx, vcancel := WithTimeout(context.WithValue(context.Background(), key{}, 1), time.Hour)
	defer vcancel()
	if vctx.Value(key{}) != 1 {
		t.Fatal("parent value lost")
	}
	_ = vctx.Done()
	if vctx.Value(key{}) != 1 {
		t.Fatal("parent value lost once timed")
	}
}

func TestNoAllocationsWithoutDone(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		ctx, cancel := WithTimeout(context.Background(), time.Hour)
		_ = ctx.Err()
		cancel()
	})
	if n > 2 {
		t.Errorf("%v allocations per run, want at most 2", n)
	}
}
