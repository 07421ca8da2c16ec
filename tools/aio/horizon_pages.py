"""Horizon's pages as a user sees them, for the browser tour
(browser_tour.py): headless Chromium (Debian's chromium and chromedriver,
nothing downloaded) that finds visible elements and clicks them.

Each page object knows where things are on its page; what the tour does
with them and what it expects are the tour's.
"""

import sys
import time

from selenium.common import exceptions as sel_exc
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr,
          flush=True)


class StepFailed(Exception):
    pass


def detached(exc):
    """Whether EXC says the element belongs to a page no longer shown.

    Chromium reports it as a stale element or, when the page was replaced
    while it looked the node up, as an inspector error.
    """
    return (isinstance(exc, sel_exc.StaleElementReferenceException) or
            'does not belong to the document' in (exc.msg or ''))


def wait_for(what, check, timeout, interval=1):
    """Calls check() until it returns something true, which it returns."""
    end = time.time() + timeout
    while True:
        try:
            result = check()
        except sel_exc.WebDriverException as e:
            if not detached(e):
                raise
            result = None  # Horizon replaced the page while we read it
        if result:
            return result
        if time.time() > end:
            raise StepFailed('%s: not within %d s' % (what, timeout))
        time.sleep(interval)


class Horizon(object):
    """The browser on Horizon at URL."""

    def __init__(self, url):
        self.url = url
        options = webdriver.ChromeOptions()
        options.binary_location = '/usr/bin/chromium'
        for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
                    '--window-size=1400,1000'):
            options.add_argument(arg)
        # a driver path given: Selenium Manager downloads nothing
        self.driver = webdriver.Chrome(
            service=Service('/usr/bin/chromedriver'), options=options)
        self.driver.set_page_load_timeout(120)

    def open(self, path):
        self.driver.get(self.url + path)

    def visible(self, css, within=None):
        found = (within or self.driver).find_elements(By.CSS_SELECTOR, css)
        return [e for e in found if e.is_displayed()]

    def wait_visible(self, css, what, timeout=30):
        return wait_for(what, lambda: self.visible(css), timeout, 0.3)[0]

    def click(self, element):
        self.driver.execute_script(
            'arguments[0].scrollIntoView({block: "center"})', element)
        try:
            element.click()
        except sel_exc.ElementClickInterceptedException:
            # a fading tooltip or toast over it: click where the user aimed
            self.driver.execute_script('arguments[0].click()', element)
        except sel_exc.WebDriverException as e:
            # the click submitted a form: Chromium may lose the node while
            # the next page replaces this one (the caller waits for it)
            if not detached(e):
                raise

    def type_into(self, field_id, text):
        field = self.driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(text)

    def choose(self, select_id, name):
        """Picks the option named NAME (labels may add a size) in a form."""
        select = self.driver.find_element(By.ID, select_id)
        # textContent: Selenium's .text of a hidden option is empty
        labels = [o.get_attribute('textContent').strip()
                  for o in Select(select).options]
        label = next((x for x in labels
                      if x == name or x.startswith(name + ' ')), None)
        if label is None:
            raise StepFailed('%s offers no %s' % (select_id, name))
        if select.is_displayed():
            Select(select).select_by_visible_text(label)
            return
        # Horizon's themable select: a button menu over a hidden <select>
        menu = select.find_element(By.XPATH, './ancestor::div[contains('
                                   '@class, "themable-select")]')
        self.click(menu.find_element(By.CSS_SELECTOR, '.dropdown-toggle'))
        self.click(next(a for a in self.visible('.dropdown-menu a', menu)
                        if a.text.strip() == label))

    def submit_modal(self):
        modal = self.wait_visible('.modal', 'dialog')
        self.click(self.visible('.modal-footer [type=submit], '
                                '.modal-footer .btn-primary, '
                                '.modal-footer .btn-danger', modal)[-1])

    def reloaded(self, act):
        """Does ACT, which ends in a new page, and checks for errors."""
        page = self.driver.find_element(By.TAG_NAME, 'html')

        def gone():
            try:
                return not page.tag_name
            except sel_exc.WebDriverException as e:
                if detached(e):
                    return True
                raise
        act()
        wait_for('the next page', gone, 60, 0.3)
        # read again while the next page is still replacing this one
        errors = wait_for('the next page read', lambda: [
            self.visible('.alert-danger')], 30, 0.3)[0]
        if errors:
            raise StepFailed('Horizon says: ' + errors[0].text.strip())

    def messages(self):
        return ' / '.join(e.text.strip() for e in self.visible('.alert')
                          if e.text.strip())

    def save(self, base, html=False):
        """A screenshot as BASE.png; with HTML the page as BASE.html."""
        self.driver.save_screenshot(base + '.png')
        if html:
            with open(base + '.html', 'w') as f:
                f.write(self.driver.page_source)

    def quit(self):
        self.driver.quit()


class LoginPage(object):

    def __init__(self, horizon):
        self.horizon = horizon

    def log_in(self, user, password, domain):
        horizon = self.horizon
        horizon.open('/auth/login/')
        horizon.wait_visible('#id_username', 'the login form').send_keys(
            user)
        horizon.driver.find_element(By.ID, 'id_password').send_keys(password)
        for field in horizon.visible('#id_domain'):
            field.clear()
            field.send_keys(domain)
        horizon.click(horizon.driver.find_element(By.ID, 'loginBtn'))
        wait_for('logged in', lambda: '/auth/login' not in
                 horizon.driver.current_url and horizon.visible('.navbar'),
                 60, 0.5)


def row_cells(horizon, table, row):
    """{column title: text} of ROW of the Horizon table TABLE (its id)."""
    titles = [th.text.strip() for th in horizon.driver.find_elements(
        By.CSS_SELECTOR, '#%s tr.table_column_header th' % table)]
    cells = row.find_elements(By.XPATH, './td')
    return dict(zip(titles, [td.text.strip() for td in cells]))


class TablePage(object):
    """A Horizon table (PATH, its id TABLE): a row per object, the row's
    actions in its menu, the table's above it.
    """

    PATH = TABLE = None

    def __init__(self, horizon):
        self.horizon = horizon

    def find(self, name):
        """The ID of the object listed as NAME, nothing if none."""
        self.horizon.open(self.PATH)
        rows = self.horizon.driver.find_elements(
            By.CSS_SELECTOR, '#%s tr[data-display="%s"]' % (self.TABLE, name))
        return rows and rows[0].get_attribute('data-object-id')

    def row(self, object_id):
        self.horizon.open(self.PATH)
        rows = self.horizon.driver.find_elements(
            By.ID, '%s__row__%s' % (self.TABLE, object_id))
        return rows[0] if rows else None

    def cells(self, object_id):
        """{column title: text} of the object's row, None if none."""
        row = self.row(object_id)
        return None if row is None else row_cells(self.horizon, self.TABLE,
                                                  row)

    def all_cells(self):
        """{object ID: {column title: text}} of every row."""
        self.horizon.open(self.PATH)
        return {row.get_attribute('data-object-id'):
                row_cells(self.horizon, self.TABLE, row)
                for row in self.horizon.driver.find_elements(
                    By.CSS_SELECTOR, '#%s tr[data-object-id]' % self.TABLE)}

    def action(self, object_id, name, fill=None):
        """Runs a row action (from the row's menu) to the next page.

        Confirms it if Horizon asks; an action that opens a form has the
        form filled by FILL and submitted.
        """
        row = self.row(object_id)
        if row is None:
            raise StepFailed('no row for %s' % object_id)
        found = self.horizon.driver.find_elements(
            By.ID, '%s__row_%s__action_%s' % (self.TABLE, object_id, name))
        if not found:
            raise StepFailed('the row offers no action %s' % name)
        self._run(found[0], name, fill, row)

    def table_action(self, name, fill):
        """Runs an action above the table whose form FILL fills."""
        self.horizon.open(self.PATH)
        self._run(self.horizon.driver.find_element(
            By.ID, '%s__action_%s' % (self.TABLE, name)), name, fill)

    def _run(self, button, name, fill, row=None):
        horizon = self.horizon
        # Horizon asks before it does anything harmful
        confirm = 'btn-danger' in button.get_attribute('class')

        def run():
            if not button.is_displayed():
                horizon.click(row.find_element(By.CSS_SELECTOR,
                                               '.dropdown-toggle'))
            log('action: %s' % button.text.strip())
            horizon.click(button)
            if fill:
                horizon.wait_visible('.modal form', 'the %s form' % name)
                fill()
            if fill or confirm:
                horizon.submit_modal()
        horizon.reloaded(run)


class InstancesPage(TablePage):
    """The Instances table."""

    PATH = '/project/instances/'
    TABLE = 'instances'

    def launch_wizard(self):
        self.horizon.open(self.PATH)
        self.horizon.click(self.horizon.driver.find_element(
            By.ID, 'instances__action_launch-ng'))
        return LaunchWizard(self.horizon)


class AdminInstancesPage(TablePage):
    """Admin > Compute > Instances: every project's instances, with their
    hosts, and the admin's actions (Migrate, Live Migrate).
    """

    PATH = '/admin/instances/'
    TABLE = 'instances'


class VolumesPage(TablePage):
    """The Volumes table (Project > Volumes)."""

    PATH = '/project/volumes/'
    TABLE = 'volumes'


class LaunchWizard(object):
    """The Launch Instance wizard, open over the Instances table."""

    def __init__(self, horizon):
        self.horizon = horizon

    def name(self, name):
        self.horizon.wait_visible('.wizard #name', 'the wizard').send_keys(
            name)

    def go_to(self, title):
        self.horizon.click(self.horizon.driver.find_element(
            By.XPATH, '//div[contains(@class, "wizard-nav")]//a[span[normalize'
            '-space(.)="%s"]]' % title))
        time.sleep(0.5)

    def allocate(self, name):
        """Moves NAME into the step's allocated table, if not there."""
        step = self.horizon.visible('.wizard .step')[0]
        cell = ('//td[normalize-space(.)="%s"]/ancestor::tr[1]'
                '//td[contains(@class, "actions_column")]//button' % name)
        for where in ('transfer-allocated', 'transfer-available'):
            buttons = [e for e in step.find_elements(
                By.XPATH, './/div[contains(@class, "%s")]%s' % (where, cell))
                if e.is_displayed()]
            if buttons and where == 'transfer-available':
                self.horizon.click(buttons[0])
            if buttons:
                return True
        return False

    def create_volume(self, yes):
        """Sets the Source step's "Create New Volume" (offered for an image
        source when Cinder is there); false if this Horizon offers none.
        """
        return self._yes_no('vol_create', yes)

    def delete_volume_on_delete(self, yes):
        """Sets "Delete Volume on Instance Delete" (offered for a new
        volume); false if this Horizon offers none.
        """
        return self._yes_no('vol_delete_on_instance_delete', yes)

    def _yes_no(self, field, yes):
        """Clicks Yes or No of the Source step's toggle for FIELD (of the
        wizard's model) unless it is set; false if there is none.
        """
        buttons = [e for e in self.horizon.driver.find_elements(
            By.XPATH, '//label[@ng-model="model.newInstanceSpec.%s"]'
            '[normalize-space(.)="%s"]' % (field, 'Yes' if yes else 'No'))
            if e.is_displayed()]
        if buttons and 'active' not in buttons[0].get_attribute('class'):
            self.horizon.click(buttons[0])
        return bool(buttons)

    def config_drive(self):
        """Ticks Configuration Drive; false if this Horizon offers none."""
        boxes = self.horizon.driver.find_elements(By.ID, 'config-drive')
        if boxes and not boxes[0].is_selected():
            self.horizon.click(self.horizon.driver.find_element(
                By.CSS_SELECTOR, 'label[for=config-drive]'))
        return bool(boxes)

    def cancel(self):
        self.horizon.click(self.horizon.wait_visible(
            'button.pull-left[ng-click="cancel()"]', 'the Cancel button'))
        self.wait_closed(30)

    def launch(self):
        self.horizon.click(self.horizon.wait_visible(
            '.wizard .finish:not([disabled])', 'the Launch Instance button'))
        self.wait_closed(60)

    def wait_closed(self, timeout):
        wait_for('wizard closes', lambda: not self.horizon.visible('.wizard'),
                 timeout, 0.5)


class LogTab(object):
    """An instance's Log tab: its console log."""

    def __init__(self, horizon):
        self.horizon = horizon

    def text(self, server_id):
        """The console log's last 500 lines, as the tab shows them."""
        horizon = self.horizon
        if 'instance_details__log' not in horizon.driver.current_url:
            horizon.open('/project/instances/%s/?tab=instance_details__log'
                         % server_id)
        form = horizon.wait_visible('#tail_length', 'the Log tab')
        length = form.find_element(By.NAME, 'length')
        length.clear()
        length.send_keys('500')
        pre = horizon.driver.find_element(By.CSS_SELECTOR, 'pre.logs')
        horizon.driver.execute_script('arguments[0].textContent = ""', pre)
        horizon.click(form.find_element(By.CSS_SELECTOR, 'button'))
        # the Go button fetches the log with jQuery (empty while booting)
        wait_for('the log', lambda: horizon.driver.execute_script(
            'return jQuery.active === 0'), 30, 0.3)
        # the newest lines into view, for the step's screenshot
        horizon.driver.execute_script(
            'window.scrollTo(0, document.body.scrollHeight)')
        return pre.text.replace('\r', '')


class ConsoleTab(object):
    """An instance's Console tab: the console nova's proxy serves (noVNC's
    vnc_lite page) in a frame.
    """

    # noVNC's status bar and its canvas, read in the frame: whether the
    # canvas shows something (not every pixel alike)
    STATE = """
        var status = document.getElementById('status');
        var canvas = document.querySelector('#screen canvas');
        var state = {status: status ? status.textContent : '',
                     width: 0, height: 0, varied: false};
        if (canvas && canvas.width && canvas.height) {
            state.width = canvas.width;
            state.height = canvas.height;
            var d = canvas.getContext('2d').getImageData(
                0, 0, canvas.width, canvas.height).data;
            for (var i = 4; i < d.length; i += 4) {
                if (d[i] != d[0] || d[i + 1] != d[1] || d[i + 2] != d[2]) {
                    state.varied = true;
                    break;
                }
            }
        }
        return state;
    """

    def __init__(self, horizon):
        self.horizon = horizon

    def open(self, server_id):
        """The tab, its frame shown; the frame's address."""
        self.horizon.open('/project/instances/%s/?tab=instance_details__'
                          'console' % server_id)
        frame = self.horizon.wait_visible('iframe#console_embed',
                                          'the console frame', 60)
        return frame.get_attribute('src')

    def state(self):
        """{status, width, height, varied} of noVNC in the open tab."""
        driver = self.horizon.driver
        driver.switch_to.frame(driver.find_element(By.ID, 'console_embed'))
        try:
            return driver.execute_script(self.STATE)
        finally:
            driver.switch_to.default_content()


class ActionLogTab(object):
    """An instance's Action Log tab: what nova did to it, newest first."""

    def __init__(self, horizon):
        self.horizon = horizon

    def actions(self, server_id):
        """[{column title: text}] of the tab's rows."""
        self.horizon.open('/project/instances/%s/?tab=instance_details__audit'
                          % server_id)
        table = self.horizon.wait_visible('#audit', 'the Action Log')
        return [row_cells(self.horizon, 'audit', row) for row in
                table.find_elements(By.CSS_SELECTOR, 'tr[data-object-id]')]


class ImagesPage(object):

    PATH = '/project/images/'

    def __init__(self, horizon):
        self.horizon = horizon

    def active(self, name):
        """Whether the image NAME is listed as Active."""
        self.horizon.open(self.PATH)
        rows = self.horizon.driver.find_elements(
            By.XPATH, '//tr[.//a[normalize-space(.)="%s"]]' % name)
        return rows and 'Active' in rows[0].text
