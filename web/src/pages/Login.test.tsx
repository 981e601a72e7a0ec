import { MantineProvider } from "@mantine/core";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LoginPage } from "./Login";

function answer(status: number, body: unknown) {
  return vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
}

describe("LoginPage", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("says so when the password is wrong", async () => {
    vi.stubGlobal("fetch", answer(401, { detail: "wrong user name or password" }));
    const onLogin = vi.fn();
    render(
      <MantineProvider env="test">
        <LoginPage onLogin={onLogin} />
      </MantineProvider>,
    );
    await userEvent.type(screen.getByLabelText(/User name/), "ann");
    await userEvent.type(screen.getByLabelText(/Password/), "nope");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong user name or password.");
    expect(onLogin).not.toHaveBeenCalled();
  });

  it("hands the token on, and explains an unreachable service", async () => {
    const fetch = answer(200, { access_token: "tok", token_type: "bearer", expires_at: "2030-01-01T00:00:00Z", role: "viewer" });
    vi.stubGlobal("fetch", fetch);
    const onLogin = vi.fn();
    render(
      <MantineProvider env="test">
        <LoginPage onLogin={onLogin} />
      </MantineProvider>,
    );
    await userEvent.type(screen.getByLabelText(/User name/), "ann");
    await userEvent.type(screen.getByLabelText(/Password/), "secret-pass");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await vi.waitFor(() => expect(onLogin).toHaveBeenCalledWith("tok"));
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Cannot reach the linewatch service");
  });
});
