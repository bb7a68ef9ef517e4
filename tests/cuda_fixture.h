// One fixture for the GPU suites (tests/test_cuda_*.cc): a CUDA device for
// each test, host vectors uploaded into buffers freed at the end, downloads
// after a sync. Without a GPU every test skips with a message.
#pragma once

#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "affinity.h"
#include "ops.h"

class CudaFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!af_cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine";
    af_error_clear(&err);
    ASSERT_EQ(af_device_cuda(0, &dev, &err), AF_OK) << err.msg;
    ASSERT_EQ(dev.backend, AF_BACKEND_CUDA);
    live = true;
  }
  void TearDown() override {
    for (void *p : ptrs) af_dev_free(&dev, p);
    if (live) af_device_release(&dev);
  }
  // A device copy of h; one spare byte, so an empty vector still gets a buffer.
  template <class T>
  T *up(const std::vector<T> &h) {
    void *p = af_dev_malloc(&dev, h.size() * sizeof(T) + 1, &err);
    EXPECT_NE(p, nullptr) << err.msg;
    if (!p) return nullptr;
    ptrs.push_back(p);
    EXPECT_EQ(af_dev_upload(&dev, p, h.data(), h.size() * sizeof(T), &err), AF_OK) << err.msg;
    return (T *)p;
  }
  // As up, but nullptr for an empty vector (an op's "no tensor", e.g. no bias).
  template <class T>
  T *up_or_null(const std::vector<T> &h) {
    return h.empty() ? nullptr : up(h);
  }
  // A device buffer of n floats, every one NaN (outputs are poisoned first).
  float *poisoned(size_t n) {
    return up(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
  }
  // n elements back from the device, after the queued work has finished.
  template <class T>
  std::vector<T> down(const T *d, size_t n) {
    std::vector<T> h(n);
    EXPECT_EQ(af_dev_sync(&dev, &err), AF_OK) << err.msg;
    EXPECT_EQ(af_dev_download(&dev, h.data(), d, n * sizeof(T), &err), AF_OK) << err.msg;
    return h;
  }
  af_device dev{};
  af_error err{};
  bool live = false;
  std::vector<void *> ptrs;
};
