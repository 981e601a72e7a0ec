import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Model } from "../api/client";
import { fmtDateTime } from "../lib/format";
import { modelVersion, renderAs, stubFetch } from "../test/machines";
import { Recalibrate, calibrationLine, calibrationOf } from "./Recalibrate";

const model = modelVersion();

const datasets = [{ id: 3, name: "today", images: 40, created_at: "2026-12-06T08:00:00Z" }];

describe("Recalibrate", { timeout: 40_000 }, () => {
  afterEach(() => vi.unstubAllGlobals());

  it("queues a recalibration on a dataset at a rate in percent, follows the job and names the new version", async () => {
    let status = "running";
    const sent = stubFetch({
      "GET /api/v1/datasets": datasets,
      "POST /api/v1/models/5/calibrate": { id: 9, kind: "calibrate", status: "queued", progress: 0, message: "queued" },
      "GET /api/v1/jobs/9": () => ({
        id: 9,
        kind: "calibrate",
        status,
        progress: status === "running" ? 0.5 : 1,
        message: "",
        error: null,
        result: status === "succeeded" ? { model_id: 6, images: 38, skipped: 2 } : null,
      }),
    });
    const done = vi.fn();
    const { stream } = renderAs("engineer", <Recalibrate model={model} onDone={done} />);
    await userEvent.click(screen.getByRole("textbox", { name: "Good images" }));
    await userEvent.click(await screen.findByRole("option", { name: /today \(40 images/ }));
    await userEvent.type(screen.getByRole("textbox", { name: /False alarms/ }), "0.5");
    await userEvent.click(screen.getByTestId("recalibrate-start"));
    await waitFor(() => expect(sent.some((s) => s.method === "POST")).toBe(true));
    const post = sent.find((s) => s.method === "POST")!;
    expect(post.body).toEqual({ dataset_id: 3, false_alarm_rate: 0.005 });
    expect(done).toHaveBeenCalledWith(null); // listed at once, calibrating
    act(() => stream.jobs.forEach((f) => f({ id: 9, kind: "calibrate", status: "running", progress: 0.5, message: "" })));
    expect(screen.getByTestId("recalibrate-start")).toBeDisabled();
    status = "succeeded";
    act(() => stream.jobs.forEach((f) => f({ id: 9, kind: "calibrate", status: "succeeded", progress: 1, message: "" })));
    expect(await screen.findByTestId("recalibrate-message")).toHaveTextContent(
      "Version #6 is ready (2 images left out: unreadable or no longer stored): activate it on a station",
    );
    expect(done).toHaveBeenLastCalledWith(6);
  });

  it("without a dataset sends the rate alone (the kept scores), refuses a rate of 50 % or more, and shows a refusal", async () => {
    const sent = stubFetch({ "GET /api/v1/datasets": [] });
    renderAs("engineer", <Recalibrate model={model} onDone={() => {}} />);
    const rate = screen.getByRole("textbox", { name: /False alarms/ });
    await userEvent.type(rate, "60");
    expect(screen.getByTestId("recalibrate-start")).toBeDisabled();
    await userEvent.clear(rate);
    await userEvent.type(rate, "2");
    await userEvent.click(screen.getByTestId("recalibrate-start"));
    // no route for the POST: the stub answers 404, which the card shows
    expect(await screen.findByTestId("recalibrate-message")).toHaveTextContent("No route POST /api/v1/models/5/calibrate.");
    expect(sent.find((s) => s.method === "POST")!.body).toEqual({ false_alarm_rate: 0.02 });
  });

  it("takes a station's known-good parts in a window, refusing a window that ends before it starts", async () => {
    const sent = stubFetch({
      "GET /api/v1/datasets": datasets,
      "POST /api/v1/models/5/calibrate": { id: 9, kind: "calibrate", status: "queued", progress: 0, message: "queued" },
    });
    const stations = [
      { id: 1, name: "cam1", active_model_id: 5, previous_model_id: null, created_at: "2026-12-06T08:00:00Z" },
      { id: 2, name: "cam2", active_model_id: null, previous_model_id: null, created_at: "2026-12-06T08:00:00Z" },
    ];
    renderAs("engineer", <Recalibrate model={model} onDone={() => {}} />, undefined, { stations, station: "cam2" });
    expect(screen.queryByTestId("recalibrate-station")).toBeNull();
    await userEvent.click(screen.getByRole("textbox", { name: "Good images" }));
    await userEvent.click(await screen.findByRole("option", { name: "Known-good parts a station inspected" }));
    expect(screen.getByRole("textbox", { name: "Station" })).toHaveValue("cam2"); // the header's station first
    fireEvent.change(screen.getByLabelText("From"), { target: { value: "2026-12-06T11:00" } });
    fireEvent.change(screen.getByLabelText("To"), { target: { value: "2026-12-06T10:00" } });
    expect(screen.getByTestId("recalibrate-start")).toBeDisabled();
    expect(screen.getByText("before To")).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText("To"), { target: { value: "2026-12-06T11:30" } });
    await userEvent.click(screen.getByTestId("recalibrate-start"));
    await waitFor(() => expect(sent.some((s) => s.method === "POST")).toBe(true));
    expect(sent.find((s) => s.method === "POST")!.body).toEqual({
      station: "cam2",
      since: new Date("2026-12-06T11:00").toISOString(),
      until: new Date("2026-12-06T11:30").toISOString(),
    });
  });

  it("opened from the drift watch's link, starts on that station's parts", async () => {
    stubFetch({ "GET /api/v1/datasets": datasets });
    const stations = [
      { id: 1, name: "cam1", active_model_id: 5, previous_model_id: null, created_at: "2026-12-06T08:00:00Z" },
      { id: 2, name: "cam2", active_model_id: null, previous_model_id: null, created_at: "2026-12-06T08:00:00Z" },
    ];
    renderAs("engineer", <Recalibrate model={model} onDone={() => {}} fromStation="cam1" />, undefined, { stations, station: "cam2" });
    expect(screen.getByRole("textbox", { name: "Good images" })).toHaveValue("Known-good parts a station inspected");
    expect(screen.getByRole("textbox", { name: "Station" })).toHaveValue("cam1"); // the link's, not the header's
  });

  it("says how a recalibrated version's thresholds were set", () => {
    const m = {
      ...model,
      metrics: {
        calibration: {
          from_model_id: 5,
          source: "images",
          images: 38,
          before: { false_alarm_rate: 0.01, image_threshold: 2 },
          after: { false_alarm_rate: 0.005, image_threshold: 2.2 },
          flagged_before: 3,
          flagged_after: 1,
        },
      },
    } as Model;
    expect(calibrationOf(model)).toBeNull();
    expect(calibrationLine(calibrationOf(m)!)).toBe(
      "Thresholds set again from version #5 on 38 good images, at 0.50 % false alarms · of them flagged: 3 before, 1 now.",
    );
    const kept = { ...calibrationOf(m)!, source: "kept scores" as const, scores_from: "training" as const, images: 21 };
    expect(calibrationLine(kept)).toContain("on the scores it kept of the 21 good images held out at training, at 0.50 %");
    expect(calibrationLine({ ...kept, scores_from: "images" })).toContain("good images of its last calibration");
    const onStation = { ...calibrationOf(m)!, station: "cam1", since: "2026-12-06T10:00:00Z", until: "2026-12-06T11:00:00Z" };
    expect(calibrationLine(onStation)).toContain(
      `on 38 parts cam1 inspected from ${fmtDateTime("2026-12-06T10:00:00Z")} to ${fmtDateTime("2026-12-06T11:00:00Z")}, at 0.50 %`,
    );
  });
});
