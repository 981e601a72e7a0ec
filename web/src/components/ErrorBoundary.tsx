import { Alert, Button } from "@mantine/core";
import { Component, type ReactNode } from "react";

export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };
  static getDerivedStateFromError(error: Error) {
    return { error };
  }
  render() {
    if (this.state.error) {
      const chunk = /dynamically imported module|Loading chunk/i.test(this.state.error.message);
      return (
        <Alert color="red" title={chunk ? "The dashboard was updated" : "Something went wrong on this page"}>
          {chunk ? "Reload to get the new version." : this.state.error.message}
          <div>
            <Button mt="sm" size="xs" onClick={() => location.reload()}>
              Reload
            </Button>
          </div>
        </Alert>
      );
    }
    return this.props.children;
  }
}
